"""A scheme from outside the package joins the sweep with no edit of a core file: the worked
example of docs/schemes.md, named in a config's scheme_modules, runs in the smoke sweep, and the
aggregates, figures and captions pick it up from the registry."""

from __future__ import annotations

import sys

import pytest
import xarray as xr
from helpers import REPO, SMOKE, load_config, ok, snakemake, write_config

from mecmodel import plots, schemes

pytestmark = pytest.mark.slow
EXAMPLE = REPO / "examples" / "schemes" / "threshold.py"


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(schemes, "SCHEMES", dict(schemes.SCHEMES))
    yield
    for name in [m for m in sys.modules if m.startswith("mecmodel_scheme_")]:
        del sys.modules[name]


def test_example_scheme_runs_in_the_smoke_sweep(tmp_path, registry):
    config = load_config(SMOKE)
    config["experiments"] = {k: config["experiments"][k] for k in ("cost_vs_block", "cost_vs_K")}
    for exp in config["experiments"].values():
        exp["scheme"] = "all"  # the selector, as config/config.yaml writes it
    config["scheme_modules"] = [str(EXAMPLE)]
    work = tmp_path / "work"
    work.mkdir()
    cfg = write_config(tmp_path / "c.yaml", config)
    ok(snakemake(work, configfile=cfg))
    ok(snakemake(work, "--report", "results/report.html", configfile=cfg))

    schemes.load_modules([str(EXAMPLE)])
    assert list(schemes.SCHEMES)[-1] == "threshold"
    for name in config["experiments"]:
        with xr.open_dataset(work / "results" / f"{name}.nc") as ds:
            assert ds["scheme"].values.tolist() == schemes.select("all")  # registry order, the new one last
            assert (work / "results" / "figures" / f"{name}.png").stat().st_size > 0
            if name == "cost_vs_block":
                fig = plots.build_figure(name, ds.load())
    # Fig. 7: in the all-schemes legend as a reference, and not in the paper's-schemes panel
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "threshold (ref.)" in labels and "proposed" in labels
    style = schemes.SCHEMES["threshold"].style
    left, right = fig.axes[0], fig.axes[1]
    assert any(line.get_color() == style["color"] for line in left.get_lines())
    assert not any(line.get_color() == style["color"] for line in right.get_lines())
    assert len(right.get_lines()) == len(schemes.select("paper"))
    # the report's caption names it with its description
    assert "reference: offload a back end while" in (work / "results" / "report.html").read_text()
