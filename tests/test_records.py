"""A policy declares the variables it records (``Policy.records``), as Algorithms 1 and 2 do (issue 22)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

import mecmodel
from mecmodel import schemes
from mecmodel.dataset import write_atomic
from mecmodel.params import PolicyError, make_params
from mecmodel.policies import WDPolicy
from mecmodel.policies.qlearning import Algorithm1, Algorithm2
from mecmodel.policies.rules import FullSpeed
from mecmodel.results import aggregate
from mecmodel.simulation import simulate_arrays
from mecmodel.vocabulary import VARIABLE_BY_NAME, Variable


class Counting(WDPolicy):
    """Full power; counts the blocks in which its WDs had any backlog, and records the mean queue."""

    records = (
        Variable("mean_backlog", "cycle", "mean WD queue seen by the policy", per="block"),
        Variable("busy_blocks", "1", "blocks in which some WD had work queued", per="seed"),
    )

    def reset(self, ctx, obs):
        super().reset(ctx, obs)
        self.busy = np.zeros(ctx.S)

    def act(self, obs):
        self.busy += (obs.q > 0).any(axis=1)
        return np.full(obs.q.shape, self.ctx.params.p_max)

    def update(self, tr):
        return {"mean_backlog": tr.obs.q.mean(axis=1)}

    def finish(self):
        return {"busy_blocks": self.busy}


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    schemes.register("counting", wd=Counting, server=FullSpeed, description="records its own variables")


def test_the_built_in_learners_declare_their_series_from_the_table():
    assert Algorithm1.records == (VARIABLE_BY_NAME["alg1_td_error"], VARIABLE_BY_NAME["alg1_rel_change"])
    assert Algorithm2.records == (VARIABLE_BY_NAME["alg2_td_error"], VARIABLE_BY_NAME["alg2_rel_change"])


def test_a_policys_own_variables_land_in_the_run_with_their_attributes(counting):
    ds = mecmodel.simulate(K=3, scheme="counting", seeds=2, blocks=8)
    assert ds["mean_backlog"].dims[-2:] == ("seed", "block") and ds["busy_blocks"].dims[-1] == "seed"
    assert ds["mean_backlog"].attrs == {"units": "cycle", "long_name": "mean WD queue seen by the policy"}
    assert ds["busy_blocks"].attrs["units"] == "1"
    # what the policy saw is what the run stored: the queue at the start of each block
    np.testing.assert_allclose(ds["mean_backlog"].squeeze(), ds["wd_queue_mean"].squeeze(), rtol=1e-6)
    busy = (ds["wd_queue_max"].squeeze() > 0).sum("block")
    np.testing.assert_array_equal(ds["busy_blocks"].squeeze(), busy)


def test_an_aggregate_holds_them_as_nan_for_schemes_that_do_not_record_them(counting, tmp_path):
    paths = []
    for scheme in ("counting", "even"):
        paths.append(write_atomic(mecmodel.simulate(K=3, scheme=scheme, seeds=2, blocks=8), tmp_path / f"{scheme}.nc"))
    agg = xr.open_dataset(aggregate(paths, tmp_path / "agg.nc"))
    assert np.isfinite(agg["busy_blocks"].sel(scheme="counting")).all()
    assert np.isnan(agg["busy_blocks"].sel(scheme="even")).all()
    assert agg["mean_backlog"].attrs["long_name"] == "mean WD queue seen by the policy"


def _variant(**changes):
    """A Counting policy with one thing wrong."""
    return type("Variant", (Counting,), changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"update": lambda self, tr: {"other": np.zeros(self.ctx.S)}},
            "the WD policy's Variant.update returned 'other' at block 0, which it does not declare per block in "
            "records (it declares: mean_backlog)",
        ),
        ({"finish": lambda self: {}}, "busy_blocks: declared per seed, but finish() did not return it"),
        (
            {"update": lambda self, tr: {"mean_backlog": np.zeros(7)}},
            "Variant.update returned 'mean_backlog' at block 0: must be one number per seed, an array of shape (2,)",
        ),
        (
            {"records": (Variable("cost", "1", "mine", per="block"),)},
            "the WD policy's Variant.records: cost: a built-in variable of every run file; choose another name",
        ),
        (
            {"records": ("mean_backlog",)},
            "Variant.records: must hold mecmodel.vocabulary.Variable, got 'mean_backlog'",
        ),
        (
            {"records": (Variable("x", "1", "y", per="wd"),)},
            "'x': a name is a letter then letters, digits or _, and per is 'block' or 'seed'",
        ),
        (
            {"update": lambda self, tr: None},
            "the WD policy's Variant.update returned NoneType at block 0; it must return a dict",
        ),
        ({"finish": lambda self: None}, "the WD policy's Variant.finish returned NoneType; it must return a dict"),
        ({"summary": lambda self: None}, "the WD policy's Variant.summary returned NoneType; it must return a dict"),
        (
            {"records": (Variable("p_max", "W", "mine", per="seed"),)},
            "p_max: the name of a parameter (a sweep would make it a coordinate) or of a paired difference",
        ),
        (
            {"records": (Variable("diff_cost", "1", "mine", per="seed"),)},
            "diff_cost: the name of a parameter (a sweep would make it a coordinate) or of a paired difference",
        ),
    ],
)
def test_a_bad_declaration_or_value_is_one_line_naming_the_scheme(monkeypatch, changes, message):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    schemes.register("variant", wd=_variant(**changes), server=FullSpeed, description="d")
    with pytest.raises(PolicyError, match=re.escape(message)) as err:
        simulate_arrays(make_params("default", {"K": 2}), "variant", [0, 1], 4)
    assert str(err.value).startswith("scheme variant: ") and "\n" not in str(err.value)
