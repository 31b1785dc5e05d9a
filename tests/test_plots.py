"""Figures: files written atomically, axes labelled, seeds/diverged runs accounted for, bad input rejected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import mecmodel
from mecmodel import plots, statistics
from mecmodel.dataset import write_atomic
from mecmodel.params import ParamError
from mecmodel.results import aggregate

SEEDS, BLOCKS = 2, 40
LOOSE = {"epsilon": 0.01, "patience": 3}


def combine(runs: list[xr.Dataset]) -> xr.Dataset:
    return xr.combine_by_coords(
        runs, data_vars="all", coords="different", compat="no_conflicts", join="outer", combine_attrs="drop_conflicts"
    )


def run(**kw) -> xr.Dataset:
    kw.setdefault("seeds", SEEDS)
    kw.setdefault("blocks", BLOCKS)
    return mecmodel.simulate(**kw)


def aggregated(tmp: Path, runs: list[xr.Dataset], **kw) -> xr.Dataset:
    """Runs written as the workflow writes them and combined by mecmodel.results.aggregate."""
    paths = []
    for i, ds in enumerate(runs):
        paths.append(write_atomic(ds, tmp / f"r{i}.nc"))
    out = aggregate(paths, tmp / "agg.nc", **kw)
    with xr.open_dataset(out) as d:
        return d.load()


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, xr.Dataset]:
    # binary at arrival 0.3 diverges at once (tiny divergence limit); binary at 0.5 is missing (outer-join hole).
    arrival = [run(K=2, arrival_prob=a, scheme=s) for a in (0.3, 0.5) for s in ("proposed", "local")]
    arrival.append(run(K=2, arrival_prob=0.3, scheme="binary", overrides={"divergence_limit": 1e-3}))
    return {
        # A loose tolerance so that both algorithms converge within the 60 blocks.
        "convergence": combine([run(K=3, scheme=s, blocks=60, overrides=LOOSE) for s in ("even", "proposed")]),
        "cost_vs_block": combine([run(K=3, scheme=s) for s in ("local", "binary", "proposed")]),
        "cost_vs_arrival": combine(arrival),
        "cost_vs_K": combine([run(K=k, scheme=s) for k in (2, 4) for s in ("proposed", "even")]),
        "cost_vs_gamma": combine([run(K=2, gamma=g, scheme=s) for g in (0.5, 0.9) for s in ("proposed", "random")]),
        "optimality_gap": combine(
            [run(K=1, arrival_prob=a, scheme=s) for a in (0.2, 0.4) for s in ("even", "optimal")]
        ),
        # dpp's V swept (a parameter the scheme declares); myopic does not declare it and is repeated
        "generic": aggregated(
            tmp_path_factory.mktemp("generic"),
            [run(K=2, scheme="dpp", scheme_params={"V": v}, sweep=["V"]) for v in (1.0, 100.0)]
            + [run(K=2, scheme="myopic")],
            experiment="cost_vs_V",
            config_json='{"reference": "myopic", "metric": "average_cost"}',
        ),
        "tradeoff": aggregated(
            tmp_path_factory.mktemp("tradeoff"),
            [run(K=2, scheme="dpp", scheme_params={"V": v}, sweep=["V"]) for v in (1.0, 100.0)]
            + [run(K=2, scheme="myopic")],
            experiment="tradeoff_V",
        ),
    }


def texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.texts) + "\n" + (fig._suptitle.get_text() if fig._suptitle else "")


def legend_labels(fig) -> list[str]:
    return [t.get_text() for lg in fig.legends for t in lg.get_texts()]


def test_fixture_covers_every_figure(datasets):
    assert set(datasets) == set(plots.FIGURES)


@pytest.mark.parametrize("name", list(plots.FIGURES))
def test_plot_writes_png_and_pdf(datasets, tmp_path, name):
    src = write_atomic(datasets[name], tmp_path / f"{name}.nc")
    png, pdf = tmp_path / "out" / f"{name}.png", tmp_path / "out" / f"{name}.pdf"
    plots.plot(name, src, png, pdf)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert png.stat().st_size > 5000 and pdf.stat().st_size > 5000
    assert sorted(p.name for p in png.parent.iterdir()) == sorted([png.name, pdf.name])


@pytest.mark.parametrize("name", list(plots.FIGURES))
def test_subtitle_states_preset_blocks_and_seeds(datasets, name):
    ds = datasets[name]
    text = texts(plots.build_figure(name, ds))
    assert f"preset {ds.attrs['preset']}" in text
    assert f"{ds.sizes['block']} blocks" in text
    assert f"({ds.sizes['seed']} seeds" in text
    assert "95% t-interval" in text


def test_cost_vs_block_axes_and_legend(datasets):
    ds = datasets["cost_vs_block"]
    fig = plots.build_figure("cost_vs_block", ds)
    axes = fig.axes
    assert len(axes) == 2  # all schemes (log) and the paper's schemes alone (linear)
    assert [ax.get_yscale() for ax in axes] == ["log", "linear"]
    assert all(ax.get_xlabel() == "block t" for ax in axes)
    assert "moving average" in axes[0].get_ylabel()
    assert legend_labels(fig) == ["proposed", "binary", "local (ref.)"]
    assert len(axes[1].get_lines()) == 2  # references left out of the linear panel
    window = min(plots.MA_WINDOW, BLOCKS // 4)
    assert f"moving average over {window} blocks" in texts(fig)
    # The plotted curve is the seed mean of the per-seed moving average.
    cost = ds["cost"].sel(scheme="proposed").squeeze().transpose("seed", "block").values
    expect = statistics.moving_average(cost, window, axis=1).mean(axis=0)
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), expect, rtol=1e-6)


def test_convergence_panels_tolerance_and_scheme_choice(datasets):
    ds = datasets["convergence"]
    fig = plots.build_figure("convergence", ds)
    assert len(fig.axes) == 4
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert "scheme proposed" in texts(fig)  # proposed is preferred over 'even' (no WD learning)
    eps = float(ds.attrs["param_epsilon"])
    for ax in (fig.axes[0], fig.axes[2]):
        assert "relative change" in ax.get_ylabel()
        assert any(np.allclose(line.get_ydata(), eps) for line in ax.get_lines())
        assert any(t.get_text() == f"tolerance ε = {eps:g}" for t in ax.get_legend().get_texts())
    assert "TD error" in fig.axes[1].get_ylabel()
    # The annotated iteration count is the median over seeds of the per-seed median.
    for row, alg in ((0, "alg1"), (2, "alg2")):
        med = ds[f"{alg}_converged_block_median"].sel(scheme="proposed").values.ravel()
        assert np.isfinite(med).all()
        legend = " ".join(t.get_text() for t in fig.axes[row].get_legend().get_texts())
        assert f"converged at block {np.median(med):.0f} (median over seeds)" in legend
        assert f"in {SEEDS}/{SEEDS} seeds" in legend
    assert f"≤ ε for {LOOSE['patience']} blocks in a row" in texts(fig)


def test_convergence_reports_no_convergence(datasets):
    ds = datasets["cost_vs_block"]  # 40 blocks at the default tolerance
    assert not np.isfinite(ds["alg2_converged_block_median"].sel(scheme="proposed")).any()
    fig = plots.build_figure("convergence", ds)
    assert "scheme proposed" in texts(fig)
    legend = " ".join(t.get_text() for t in fig.axes[2].get_legend().get_texts())
    assert f"not converged in any of {SEEDS} seeds" in legend


def test_convergence_without_attrs_falls_back(datasets):
    ds = datasets["convergence"].sel(scheme=["even"]).copy()
    ds.attrs = {}
    fig = plots.build_figure("convergence", ds)
    assert "preset unknown" in texts(fig)
    assert any(np.allclose(line.get_ydata(), 1e-3) for line in fig.axes[2].get_lines())
    assert "no learning at the WDs" in " ".join(t.get_text() for t in fig.axes[0].texts)


def test_sweep_counts_diverged_runs_and_skips_holes(datasets):
    ds = datasets["cost_vs_arrival"]
    n_div = int((ds["diverged"].sel(scheme="binary") == 1).sum())
    n_runs = int(np.isfinite(ds["diverged"].sel(scheme="binary").values.astype(float)).sum())
    assert n_div > 0 and n_runs == SEEDS  # the hole at 0.5 is not counted as a run
    fig = plots.build_figure("cost_vs_arrival", ds)
    labels = legend_labels(fig)
    assert labels[0] == "proposed" and labels[2] == "local (ref.)"
    assert labels[1].startswith("binary") and f"{n_div} of {n_runs} runs diverged" in labels[1]
    assert "diverge" in texts(fig)
    left, right, paired = fig.axes
    assert left.get_ylabel() == "discounted sum cost" and right.get_ylabel() == "average cost per block"
    assert paired.get_title() == "paired difference of the average cost"
    assert len(paired.containers) == 2  # every scheme but the reference, proposed
    assert "arrival probability" in left.get_xlabel()
    assert len(left.containers) == 3
    binary = left.containers[1].lines[0]  # errorbar containers follow the scheme order
    assert list(binary.get_xdata()) == [0.3]  # the diverged run is drawn, the missing point is skipped
    mean = ds["discounted_cost"].sel(scheme="binary", arrival_prob=0.3).mean().item()
    assert binary.get_ydata()[0] == pytest.approx(mean)


def test_no_diverged_note_when_none_diverged(datasets):
    fig = plots.build_figure("cost_vs_K", datasets["cost_vs_K"])
    assert int(datasets["cost_vs_K"]["diverged"].sum()) == 0
    assert "diverge" not in texts(fig) and "diverged" not in " ".join(legend_labels(fig))


def test_cost_vs_K_log_y_and_ticks(datasets):
    fig = plots.build_figure("cost_vs_K", datasets["cost_vs_K"])
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log", "linear"]
    assert fig.axes[0].get_xlabel() == "number of WDs K"
    # the paired panel: even minus proposed on the same seed, averaged over seeds
    (even_diff,) = (c.lines[0].get_ydata() for c in fig.axes[2].containers)
    cost = datasets["cost_vs_K"]["average_cost"]
    want = (cost.sel(scheme="even") - cost.sel(scheme="proposed")).squeeze().mean("seed")
    np.testing.assert_allclose(even_diff, want.values)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["2", "4"]
    assert legend_labels(fig) == ["proposed", "even"]


def test_optimality_gap_is_paired_by_seed_and_zero_for_the_optimum(datasets):
    ds = datasets["optimality_gap"]
    fig = plots.build_figure("optimality_gap", ds)
    assert fig.axes[0].get_ylabel() == "(J − J*) / J*  (%)"
    assert "gap to scheme optimal" in texts(fig) and "average cost" not in texts(fig)
    assert legend_labels(fig)[:2] == ["even", "optimal (ref.)"]
    even_line, opt_line = (c.lines[0].get_ydata() for c in fig.axes[0].containers[:2])
    np.testing.assert_array_equal(opt_line, 0.0)
    d = ds["discounted_cost"]
    want = 100 * (d.sel(scheme="even") - d.sel(scheme="optimal")) / d.sel(scheme="optimal")
    np.testing.assert_allclose(even_line, want.squeeze().mean("seed").values)  # the mean of paired gaps
    with pytest.raises(ValueError, match="no scheme 'optimal'"):
        plots.build_figure("optimality_gap", ds.sel(scheme=["even"]))


def test_generic_draws_the_metric_against_the_swept_axis_and_the_paired_difference(datasets):
    ds = datasets["generic"]
    assert ds["V"].values.tolist() == [1.0, 100.0]
    # myopic does not declare V: its one run is repeated along the axis, bit for bit
    np.testing.assert_array_equal(
        ds["average_cost"].sel(scheme="myopic", V=1.0).values, ds["average_cost"].sel(scheme="myopic", V=100.0).values
    )
    fig = plots.build_figure("generic", ds)
    assert fig.axes[0].get_xscale() == "log"  # V spans 100x
    assert sorted(legend_labels(fig)) == ["dpp (ref.)", "myopic (ref.)"]
    xs = [c.lines[0].get_xdata().tolist() for c in fig.axes[0].containers]
    assert xs == [[1.0, 100.0], [1.0, 100.0]]
    # the second panel: dpp's mean paired difference from the reference myopic, seed by seed
    (dpp_diff,) = (c.lines[0].get_ydata() for c in fig.axes[1].containers)
    want = (ds["average_cost"].sel(scheme="dpp") - ds["average_cost"].sel(scheme="myopic")).squeeze().mean("seed")
    np.testing.assert_allclose(dpp_diff, want.values)
    assert "paired difference from myopic" in fig.axes[1].get_title()
    assert "preset default" in texts(fig) and "K = 2" in texts(fig)


def test_generic_draws_two_swept_axes_as_small_multiples(datasets):
    base = datasets["cost_vs_K"]
    ds = xr.concat(
        [base, base.assign(average_cost=base["average_cost"] + 1.0)], dim=xr.DataArray([1.0, 2.0], dims="V", name="V")
    )
    ds = ds.drop_vars([v for v in ds.data_vars if v.startswith("diff_")])
    fig = plots.build_figure("generic", ds)
    axes = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.get_title() for ax in axes]
    assert len(axes) == 2 and titles[0].endswith("V = 1") and titles[1].endswith("V = 2")
    # one row per value of V, K along x in both; the second row's means are the first's plus one
    first, second = ([c.lines[0].get_ydata() for c in ax.containers] for ax in axes)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_allclose(np.asarray(b) - np.asarray(a), 1.0)
    assert [c.lines[0].get_xdata().tolist() for c in axes[0].containers] == [
        c.lines[0].get_xdata().tolist() for c in axes[1].containers
    ]


def test_generic_refuses_three_swept_axes(datasets):
    ds = datasets["cost_vs_K"].expand_dims(V=[1.0, 2.0], f_ser_max=[1.0e9, 2.0e9])
    with pytest.raises(ValueError, match="at most 2 swept axes"):
        plots.build_figure("generic", ds)


def test_tradeoff_draws_energy_against_delay_per_value(datasets):
    ds = datasets["tradeoff"]
    fig = plots.build_figure("tradeoff", ds)
    ax = fig.axes[0]
    assert "latency" in ax.get_xlabel() and "[s]" in ax.get_xlabel() and "[J]" in ax.get_ylabel()
    by_label = dict(zip(legend_labels(fig), ax.containers, strict=True))
    dpp = by_label["dpp (ref.)"]
    np.testing.assert_allclose(dpp.lines[0].get_xdata(), ds["latency"].sel(scheme="dpp").squeeze().mean("seed"))
    np.testing.assert_allclose(dpp.lines[0].get_ydata(), ds["mean_energy"].sel(scheme="dpp").squeeze().mean("seed"))
    assert sorted(t.get_text() for t in ax.texts) == ["1", "100"]  # dpp's points labelled by V; myopic does not move


def test_cost_vs_gamma_panels(datasets):
    fig = plots.build_figure("cost_vs_gamma", datasets["cost_vs_gamma"])
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "linear", "linear"]
    assert "not comparable" in fig.axes[0].get_title()
    assert fig.axes[1].get_ylabel() == "average cost per block"
    assert fig.axes[0].get_xlabel() == "discount factor γ (logit scale)"
    assert fig.axes[0].get_xscale() == "logit"


def test_unknown_figure_names_the_field(tmp_path):
    with pytest.raises(ParamError, match=r"^figure: must be one of convergence, .*got 'fig10'"):
        plots.plot("fig10", tmp_path / "x.nc", tmp_path / "a.png", tmp_path / "a.pdf")
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_unknown_figure(tmp_path, capsys):
    from mecmodel.cli import main

    assert (
        main(
            ["plot", "nope", str(tmp_path / "x.nc"), "--png", str(tmp_path / "a.png"), "--pdf", str(tmp_path / "a.pdf")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mecmodel: error: figure: must be one of")


@pytest.mark.parametrize(("png", "pdf", "field"), [("a.pdf", "a.pdf", "png"), ("a.png", "a.svg", "pdf")])
def test_bad_output_suffix(tmp_path, png, pdf, field):
    with pytest.raises(ParamError, match=rf"^{field}: must end in \.{field}"):
        plots.plot("cost_vs_K", tmp_path / "x.nc", tmp_path / png, tmp_path / pdf)


def test_missing_or_wrong_input(tmp_path, datasets):
    with pytest.raises(ParamError, match=r"^input: no such file"):
        plots.plot("cost_vs_K", tmp_path / "none.nc", tmp_path / "a.png", tmp_path / "a.pdf")
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    with pytest.raises(ParamError, match=r"^input: cannot read"):
        plots.plot("cost_vs_K", bad, tmp_path / "a.png", tmp_path / "a.pdf")
    src = write_atomic(datasets["cost_vs_K"].drop_vars("average_cost"), tmp_path / "k.nc")
    with pytest.raises(ParamError, match=r"^input: the dataset lacks average_cost"):
        plots.plot("cost_vs_K", src, tmp_path / "a.png", tmp_path / "a.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nc", "k.nc"]


def test_failed_render_leaves_no_file(tmp_path, datasets, monkeypatch):
    from matplotlib.figure import Figure

    src = write_atomic(datasets["cost_vs_K"], tmp_path / "k.nc")
    png, pdf = tmp_path / "fig.png", tmp_path / "fig.pdf"
    real = Figure.savefig

    def savefig(self, fname, *a, **kw):
        if kw.get("format") == "pdf":
            raise RuntimeError("disk full")
        return real(self, fname, *a, **kw)

    monkeypatch.setattr(Figure, "savefig", savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.plot("cost_vs_K", src, png, pdf)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.nc"]  # no final file, no temporary left


def test_existing_outputs_survive_a_failed_render(tmp_path, datasets, monkeypatch):
    from matplotlib.figure import Figure

    src = write_atomic(datasets["cost_vs_K"], tmp_path / "k.nc")
    png, pdf = tmp_path / "fig.png", tmp_path / "fig.pdf"
    png.write_bytes(b"old png")
    pdf.write_bytes(b"old pdf")
    monkeypatch.setattr(Figure, "savefig", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        plots.plot("cost_vs_K", src, png, pdf)
    assert png.read_bytes() == b"old png" and pdf.read_bytes() == b"old pdf"


def test_import_is_light():
    code = "import sys, mecmodel.plots as p; assert p.FIGURES; print(sorted(m for m in ('matplotlib', 'seaborn', 'xarray', 'numpy', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(arrays(float, st.tuples(st.integers(1, 4), st.integers(1, 8)), elements=finite | st.just(np.nan)))
def test_mean_ci_matches_scipy_t_interval(a):
    from scipy import stats

    mean, lo, hi, n = statistics.mean_ci(a, axis=1)
    for i, row in enumerate(a):
        x = row[np.isfinite(row)]
        assert n[i] == len(x)
        if len(x) == 0:
            assert np.isnan(mean[i]) and np.isnan(lo[i]) and np.isnan(hi[i])
            continue
        assert mean[i] == pytest.approx(x.mean(), rel=1e-9, abs=1e-6)
        if len(x) == 1:
            assert np.isnan(lo[i]) and np.isnan(hi[i])
            continue
        sem = x.std(ddof=1) / np.sqrt(len(x))
        if sem == 0:
            assert lo[i] == pytest.approx(mean[i]) and hi[i] == pytest.approx(mean[i])
            continue
        want = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sem)
        assert (lo[i], hi[i]) == pytest.approx(want, rel=1e-7, abs=1e-6)
        assert lo[i] <= mean[i] <= hi[i]


@settings(max_examples=60, deadline=None)
@given(arrays(float, st.integers(1, 40), elements=finite | st.just(np.nan)), st.integers(1, 12))
def test_moving_average_matches_pandas_rolling(a, window):
    got = statistics.moving_average(a[None, :], window, axis=1)[0]
    want = pd.Series(a).rolling(window, min_periods=1).mean().to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)


def test_theme_is_seaborns_whitegrid_paper():
    """plots.THEME and plots.DEEP are what seaborn's set_theme(style="whitegrid", context="paper")
    sets (image.cmap aside: seaborn's own colormap, which no figure uses)."""
    import subprocess
    import sys

    code = (
        "import json, matplotlib; matplotlib.use('Agg'); import matplotlib as mpl\n"
        "before = dict(mpl.rcParams)\n"
        "import seaborn as sns; sns.set_theme(style='whitegrid', context='paper')\n"
        "diff = {k: v for k, v in mpl.rcParams.items() if v != before.get(k)}\n"
        "diff['axes.prop_cycle'] = [list(c) for c in diff['axes.prop_cycle'].by_key()['color']]\n"
        "diff['lines.solid_capstyle'] = diff['lines.solid_capstyle'].value\n"
        "print(json.dumps({k: v for k, v in diff.items() if k != 'image.cmap'}))\n"
    )
    import json

    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out.pop("axes.prop_cycle") == [list(c) for c in plots.DEEP]
    assert out == plots.THEME


def test_aggregate_draws_its_figure_in_the_same_job(tmp_path):
    """mecmodel aggregate --figure: the aggregate and its figure from one process (the workflow's
    aggregate rule); bad figure arguments are one line, exit 2, and nothing written."""
    import subprocess
    import sys

    from mecmodel.dataset import write_atomic

    run = tmp_path / "run.nc"
    write_atomic(mecmodel.simulate(K=2, scheme="even", seeds=2, blocks=8), run)
    base = [sys.executable, "-m", "mecmodel", "aggregate", str(run), "-o", "agg.nc", "--experiment", "e"]
    for extra, message in (
        (["--figure", "nope", "--png", "a.png", "--pdf", "a.pdf"], "--figure: must be one of"),
        (["--figure", "cost_vs_block", "--png", "a.png"], "--figure, --png and --pdf: give all three or none"),
        (["--figure", "cost_vs_block", "--png", "a.jpg", "--pdf", "a.pdf"], "--png: must end in .png"),
    ):
        r = subprocess.run([*base, *extra], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith(f"mecmodel: error: {message}"), r.stderr
        assert len(r.stderr.splitlines()) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["run.nc"]
    r = subprocess.run(
        [*base, "--figure", "cost_vs_block", "--png", "a.png", "--pdf", "a.pdf"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "a.pdf").read_bytes()[
        :5
    ] == b"%PDF-"
    with xr.open_dataset(tmp_path / "agg.nc") as agg:
        assert agg.attrs["experiment"] == "e"
