"""The metrics MEC papers report, per seed in every run (issue 13), against their definitions.

Each is an average over the same window as the average cost (the last ``average_fraction`` of
the blocks), computed here again from the per-block series the run also stores.
"""

from __future__ import annotations

import numpy as np
import pytest

import mecmodel
from mecmodel.vocabulary import METRIC_NAMES, VARIABLE_BY_NAME


@pytest.fixture(scope="module", params=["proposed", "even", "local", "offload_min_energy", "dpp"])
def run(request):
    return mecmodel.simulate(K=4, arrival_prob=0.5, gamma=0.9, scheme=request.param, seeds=3, blocks=80).squeeze()


def window(ds):
    return ds.isel(
        block=slice(ds.attrs["blocks"] - round(ds.attrs["param_average_fraction"] * ds.attrs["blocks"]), None)
    )


def test_metrics_follow_their_definitions(run):
    w, W, K = window(run), run.attrs["param_task_cycles"], int(run["K"])
    np.testing.assert_allclose(run["mean_queue_wd"], w["wd_queue_mean"].mean("block") / W, rtol=1e-6)
    np.testing.assert_allclose(run["mean_queue_server"], w["server_queue"].mean("block") / W, rtol=1e-6)
    e_wd = (w["energy_local"] + w["energy_offload"]).mean("block") / K
    np.testing.assert_allclose(run["mean_energy_wd"], e_wd, rtol=1e-6)
    np.testing.assert_allclose(run["mean_energy_server"], w["energy_server"].mean("block"), rtol=1e-6)
    np.testing.assert_allclose(run["mean_energy"], K * run["mean_energy_wd"] + run["mean_energy_server"], rtol=1e-12)
    # Little's law over both queues: tasks in the system = arrival rate x delay
    rate = K * float(run["arrival_prob"]) / run.attrs["param_tau"]
    in_system = K * run["mean_queue_wd"] + run["mean_queue_server"]
    np.testing.assert_allclose(run["latency"] * rate, in_system, rtol=1e-9)
    share = run["offloaded_share"].values
    assert ((share >= 0) & (share <= 1)).all()
    blocks = run.attrs["blocks"]
    start = blocks - round(run.attrs["param_average_fraction"] * blocks)
    for name in METRIC_NAMES:  # the table's units and long_name, its window filled in
        var = VARIABLE_BY_NAME[name]
        assert run[name].attrs["units"] == var.units
        assert run[name].attrs["long_name"] == var.long_name.format(blocks=blocks, average_from=start)


def test_offloaded_share_is_the_ratio_of_the_work_over_the_whole_run_when_the_window_is_the_run():
    ds = mecmodel.simulate(K=3, scheme="even", seeds=2, blocks=50, overrides={"average_fraction": 1.0}).squeeze()
    want = ds["work_offloaded"] / (ds["work_local"] + ds["work_offloaded"])
    np.testing.assert_allclose(ds["offloaded_share"], want, rtol=1e-12)
    local = mecmodel.simulate(K=3, scheme="local", seeds=2, blocks=50).squeeze()
    assert (local["offloaded_share"] == 0).all() and (local["mean_energy_server"] == 0).all()
