"""The paper's figures (Figs. 6-9) and our gamma sweep, drawn with seaborn from an aggregated dataset.

``plot(name, input, png, pdf)`` reads ``results/<experiment>.nc`` (runs combined with
``xr.combine_by_coords``: dims ``K, arrival_prob, gamma, scheme, seed, block``) and writes the
figure ``name`` (a key of :data:`FIGURES`) to both files atomically.

Statistics: every curve is the mean over seeds; bands and error bars are the 95% Student-t
confidence interval of that mean, mean +- t(0.975, n-1) s / sqrt(n) with n the number of seeds
holding a finite value (no interval with one seed). NaN entries, left where an outer join filled
missing combinations, are skipped. Runs in which a learner diverged stay in the means (their
learners are frozen at finite weights); the legend counts them.

The module imports only the standard library at import time; numpy, xarray, matplotlib and
seaborn are imported inside the functions that need them, so listing :data:`FIGURES` is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .params import ParamError
from .statistics import CI_TEXT, default_reference, mean_ci, moving_average, paired_differences
from .vocabulary import AXES, MA_WINDOW, ma_window  # noqa: F401  (MA_WINDOW: plots.MA_WINDOW, as before)

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

DPI = 200


# ----------------------------------------------------------------------------- styling


def _registered(name: str):
    from .schemes import SCHEMES

    return SCHEMES.get(name)


def is_reference(name: str) -> bool:
    """A registered reference scheme (drawn apart from the paper's schemes); unknown names are not."""
    s = _registered(name)
    return s is not None and not s.in_paper


def scheme_style(name: str) -> dict[str, Any]:
    """Colour, line style, marker, width and z-order of a scheme, from the registry."""
    from .schemes import default_style

    s = _registered(name)
    return dict(s.style) if s is not None else default_style(name, "paper")


#: The rcParams that seaborn's ``set_theme(style="whitegrid", context="paper")`` sets (its "deep"
#: palette included), so that a plot job need not import seaborn, whose import (scipy.stats with it)
#: is most of a plot job's start-up; ``tests/test_plots.py`` checks them against seaborn's. Left
#: out: ``image.cmap`` (seaborn's "rocket", registered by importing seaborn; no figure draws an image).
THEME = {
    "axes.axisbelow": True,
    "axes.edgecolor": ".8",
    "axes.grid": True,
    "axes.labelcolor": ".15",
    "axes.labelsize": 9.600000000000001,
    "axes.linewidth": 1.0,
    "axes.titlesize": 9.600000000000001,
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "font.size": 9.600000000000001,
    "grid.color": ".8",
    "legend.fontsize": 8.8,
    "legend.title_fontsize": 9.600000000000001,
    "lines.linewidth": 1.2000000000000002,
    "lines.markersize": 4.800000000000001,
    "lines.solid_capstyle": "round",
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "patch.linewidth": 0.8,
    "text.color": ".15",
    "xtick.bottom": False,
    "xtick.color": ".15",
    "xtick.labelsize": 8.8,
    "xtick.major.size": 4.800000000000001,
    "xtick.major.width": 1.0,
    "xtick.minor.size": 3.2,
    "xtick.minor.width": 0.8,
    "ytick.color": ".15",
    "ytick.labelsize": 8.8,
    "ytick.left": False,
    "ytick.major.size": 4.800000000000001,
    "ytick.major.width": 1.0,
    "ytick.minor.size": 3.2,
    "ytick.minor.width": 0.8,
}
#: seaborn's "deep" palette, the theme's colour cycle
DEEP = (
    (0.2980392156862745, 0.4470588235294118, 0.6901960784313725),
    (0.8666666666666667, 0.5176470588235295, 0.3215686274509804),
    (0.3333333333333333, 0.6588235294117647, 0.40784313725490196),
    (0.7686274509803922, 0.3058823529411765, 0.3215686274509804),
    (0.5058823529411764, 0.4470588235294118, 0.7019607843137254),
    (0.5764705882352941, 0.47058823529411764, 0.3764705882352941),
    (0.8549019607843137, 0.5450980392156862, 0.7647058823529411),
    (0.5490196078431373, 0.5490196078431373, 0.5490196078431373),
    (0.8, 0.7254901960784313, 0.4549019607843137),
    (0.39215686274509803, 0.7098039215686275, 0.803921568627451),
)


def _setup() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from cycler import cycler

    matplotlib.rcParams.update({**THEME, "axes.prop_cycle": cycler("color", list(DEEP))})


# ----------------------------------------------------------------------------- data selection


def _require(ds: xr.Dataset, *names: str) -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ParamError(f"input: the dataset lacks {', '.join(missing)} (not an aggregated mecmodel run?)")


def _finite_any(da: xr.DataArray) -> bool:
    import numpy as np

    return bool(np.isfinite(da.values.astype(float)).any())


def _fix_point(
    ds: xr.Dataset, var: str, prefer: dict[str, float | None], sweep: str | None = None, facet: str | None = None
) -> tuple[xr.Dataset, dict]:
    """Reduce the point dims other than ``sweep`` (and ``facet``) to one value each.

    Picks the value nearest the preferred one among those holding finite ``var`` data (the first
    such value when there is no preference). Returns the reduced dataset and the chosen values.
    """
    import numpy as np

    chosen: dict[str, Any] = {}
    for dim in (*AXES, *_other_axes(ds)):
        if dim in (sweep, facet):
            continue
        if dim not in ds.dims:
            if dim in ds.coords:
                chosen[dim] = ds[dim].item()
            continue
        vals = ds[dim].values
        other = [d for d in ds[var].dims if d != dim]
        has = np.isfinite(ds[var].astype(float)).any(dim=other).values if other else np.isfinite(ds[var].values)
        cands = [i for i in range(len(vals)) if has[i]] or list(range(len(vals)))
        want = prefer.get(dim)
        i = cands[0] if want is None else min(cands, key=lambda j: abs(float(vals[j]) - want))
        ds = ds.isel({dim: i})
        chosen[dim] = vals[i].item() if hasattr(vals[i], "item") else vals[i]
    return ds, chosen


def _other_axes(ds: xr.Dataset) -> list[str]:
    """Swept parameters besides K, arrival_prob, gamma and scheme (not the figures' own ``point``)."""
    from .results import swept_dims

    return [d for d in swept_dims(ds) if d != "point"]


def _schemes(ds: xr.Dataset, var: str) -> list[str]:
    """Schemes (in the fixed order) that hold any finite value of ``var``."""
    if "scheme" not in ds.dims:
        return [str(ds["scheme"].item())] if "scheme" in ds.coords else ["(scheme)"]
    from .schemes import order

    return [s for s in order(ds["scheme"].values) if _finite_any(ds[var].sel(scheme=s))]


def _by_scheme(ds: xr.Dataset, var: str, scheme: str) -> xr.DataArray:
    da = ds[var]
    return da.sel(scheme=scheme) if "scheme" in da.dims else da


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _point_text(chosen: dict) -> str:
    names = {"K": "K", "arrival_prob": "λ", "gamma": "γ"}
    order = [*AXES, *sorted(d for d in chosen if d not in AXES)]
    return ", ".join(f"{names.get(d, d)} = {_fmt(chosen[d])}" for d in order if d in chosen)


def _range_text(counts) -> str:
    counts = sorted({int(c) for c in counts if c > 0})
    if not counts:
        return "0"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def _preset(ds: xr.Dataset) -> str:
    return str(ds.attrs.get("preset", "unknown"))


def _attr_float(ds: xr.Dataset, name: str, default: float) -> float:
    try:
        return float(ds.attrs[name])
    except (KeyError, TypeError, ValueError):
        return default


def _diverged(da: xr.DataArray | None) -> tuple[int, int]:
    """(runs flagged diverged, runs with a flag) in ``da`` (the ``diverged`` var after selection)."""
    import numpy as np

    if da is None:
        return 0, 0
    v = da.values.astype(float)
    return int((v == 1).sum()), int(np.isfinite(v).sum())


def _label(ds: xr.Dataset, scheme: str, unit: str) -> tuple[str, int]:
    reg = _registered(scheme)
    label = (reg.label if reg is not None else scheme) + (" (ref.)" if is_reference(scheme) else "")
    if "diverged" not in ds.variables:
        return label, 0
    n_div, n_all = _diverged(_by_scheme(ds, "diverged", scheme))
    if n_div:
        label += f"\n  {n_div} of {n_all} {unit} diverged"
    return label, n_div


# ----------------------------------------------------------------------------- figure scaffolding


def _new_figure(nrows: int, ncols: int, width: float, height: float, sharex: bool = True):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex)
    return fig, axes


def _finish(
    fig: Figure, title: str, subtitle: list[str], legend: tuple | None = None, footnote: str | None = None
) -> Figure:
    """Title, subtitle lines, an outside legend and a footnote; then lay the axes out beneath them."""
    h = fig.get_figheight()
    fig.suptitle(title, y=1 - 0.06 / h, va="top", fontsize=11, fontweight="bold")
    fig.text(0.5, 1 - 0.32 / h, "\n".join(subtitle), ha="center", va="top", fontsize=8, color="0.2", linespacing=1.4)
    top = 1 - (0.42 + 0.16 * len(subtitle)) / h
    bottom = 0.0
    if footnote:
        fig.text(0.01, 0.01, footnote, ha="left", va="bottom", fontsize=7, color="0.3", style="italic")
        bottom = (0.12 + 0.14 * (footnote.count("\n") + 1)) / h
    fig.tight_layout(pad=0.4, h_pad=1.2, w_pad=1.2, rect=(0, bottom, 1, top))
    if legend is not None:
        handles, labels = legend
        fig.legend(
            handles,
            labels,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5 * (top + bottom)),
            frameon=False,
            title="scheme",
            fontsize=8,
            title_fontsize=8,
        )
    return fig


def _stats_text(counts, blocks: int | None = None) -> str:
    seeds = _range_text(counts)
    word = "seed" if seeds == "1" else "seeds"
    txt = f"{CI_TEXT} ({seeds} {word}" + (", no interval with 1 seed)" if seeds == "1" else ")")
    return txt if blocks is None else f"{blocks} blocks · " + txt


def _diverged_note(total: int) -> str | None:
    if not total:
        return None
    return (
        f"{total} run(s) had a learner diverge; its weights were frozen at the last finite values, "
        "and those runs are included in the means (see the legend)."
    )


# ----------------------------------------------------------------------------- figures


def fig_convergence(ds: xr.Dataset) -> Figure:
    """Fig. 6: relative weight change and |TD error| of Algorithms 1 and 2 vs block (K = 4, proposed)."""
    import numpy as np

    _require(ds, "alg1_rel_change", "alg2_rel_change", "alg1_td_error", "alg2_td_error")
    ds, chosen = _fix_point(ds, "alg2_rel_change", {"K": 4, "arrival_prob": 0.4, "gamma": 0.9})
    scheme = None
    if "scheme" in ds.dims:
        present = _schemes(ds, "alg2_rel_change")
        learning = [s for s in present if _finite_any(ds["alg1_rel_change"].sel(scheme=s))]
        scheme = "proposed" if "proposed" in learning else (learning or present or [str(ds.scheme.values[0])])[0]
        ds = ds.sel(scheme=scheme)
    elif "scheme" in ds.coords:
        scheme = str(ds["scheme"].item())
    eps = _attr_float(ds, "param_epsilon", 1e-3)
    patience = ds.attrs.get("param_patience")
    blocks = ds.sizes.get("block", 0)
    x = ds["block"].values if "block" in ds.coords else np.arange(blocks)
    fig, axes = _new_figure(2, 2, 9.0, 6.2)
    counts: list[int] = []
    n_div_total = 0
    rows = (("alg1", "Algorithm 1 (WDs, mean over WDs)", "WDs"), ("alg2", "Algorithm 2 (server)", "server"))
    for r, (alg, name, who) in enumerate(rows):
        rel = ds[f"{alg}_rel_change"].transpose("seed", "block").values
        td = ds[f"{alg}_td_error"].transpose("seed", "block").values
        conv_med = ds[f"{alg}_converged_block_median"].values.astype(float)
        conv_frac = ds[f"{alg}_converged_fraction"].values.astype(float)
        n_seeds = int(np.isfinite(rel).any(axis=1).sum())
        for c, (data, ylabel) in enumerate(
            ((rel, r"relative change $\|w_{t+1}-w_t\| / \|w_t\|$"), (td, r"TD error $|\delta_t|$"))
        ):
            ax = axes[r, c]
            ax.set_yscale("log")
            ax.set_title(f"{name}: {'relative parameter change' if c == 0 else 'TD error'}", fontsize=9)
            ax.set_ylabel(ylabel)
            if r == 1:
                ax.set_xlabel("block t")
            if not np.isfinite(data).any():
                ax.text(
                    0.5,
                    0.5,
                    f"no learning at the {who}\nin scheme {scheme}",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    color="0.3",
                )
                continue
            mean, lo, hi, n = mean_ci(data, axis=0)
            counts.extend(np.unique(n[n > 0]))
            pos = mean > 0  # frozen (converged) learners report 0 change: log scale cannot show it
            floor = np.nanmin(mean[pos]) / 3 if pos.any() else 1e-12
            st = scheme_style(scheme or "")
            ax.fill_between(
                x,
                np.where(pos, np.maximum(np.nan_to_num(lo, nan=floor), floor), np.nan),
                np.where(pos, hi, np.nan),
                color=st["color"],
                alpha=0.2,
                linewidth=0,
            )
            ax.plot(x, np.where(pos, mean, np.nan), color=st["color"], linewidth=1.0, label="mean over seeds")
            ymin = floor
            if c == 0:
                ax.axhline(eps, color="k", linestyle=":", linewidth=1.2, label=f"tolerance ε = {eps:g}")
                ymin = min(floor, eps / 3)
            ok = np.isfinite(conv_med)
            if ok.any():
                med = float(np.median(conv_med[ok]))
                n_all = int((conv_frac == 1).sum())
                all_txt = "all WDs converged" if alg == "alg1" else "converged"
                ax.axvline(
                    med,
                    color="0.25",
                    linestyle="--",
                    linewidth=1.0,
                    label=f"converged at block {med:.0f} (median over seeds);\n{all_txt} in {n_all}/{n_seeds} seeds",
                )
            else:
                ax.plot([], [], " ", label=f"not converged in any of {n_seeds} seeds")
            ax.set_ylim(bottom=ymin)
            ax.legend(loc="best", fontsize=7, framealpha=0.9)
        if "diverged" in ds.variables and f"{alg}_diverged_block" in ds.variables:
            d = ds[f"{alg}_diverged_block"].values.astype(float)
            n_div = int((d >= 0).sum())
            if n_div:
                n_div_total += n_div
                axes[r, 0].set_title(axes[r, 0].get_title() + f" — {n_div} seed(s) diverged", fontsize=9, color="C3")
    cond = "ε" + (f" for {int(patience)} blocks in a row" if patience is not None else "")
    sub = [
        f"preset {_preset(ds)} · scheme {scheme} · {_point_text(chosen)} · {_stats_text(counts, blocks)}",
        f"converged = relative change ≤ {cond}; zero change (frozen after convergence) is not drawn on the log scale",
    ]
    return _finish(fig, "Fig. 6 — convergence of Algorithms 1 and 2", sub, footnote=_diverged_note(n_div_total))


def fig_cost_vs_block(ds: xr.Dataset) -> Figure:
    """Fig. 7: weighted cost per block vs block, trailing moving average, for each scheme (K = 20).

    With both the paper's schemes and the references present, a second panel repeats the paper's
    schemes on a linear axis: the references can be orders of magnitude apart from them.
    """
    import numpy as np

    _require(ds, "cost")
    ds, chosen = _fix_point(ds, "cost", {"K": 20, "arrival_prob": 0.4, "gamma": 0.9})
    blocks = ds.sizes.get("block", 0)
    window = ma_window(blocks)
    x = ds["block"].values
    schemes = _schemes(ds, "cost")
    paper = [s for s in schemes if not is_reference(s)]
    panels = [(schemes, "all schemes (log y)", True)]
    if paper and len(paper) < len(schemes):
        panels.append((paper, "paper's schemes only (linear y)", False))
    else:
        panels = [(schemes, "", False)]
    fig, axes = _new_figure(1, len(panels), 4.8 * len(panels) if len(panels) > 1 else 7.0, 4.2)
    handles, labels, counts, n_div_total = [], [], [], 0
    curves = {}
    for s in schemes:
        cost = _by_scheme(ds, "cost", s).transpose("seed", "block").values
        curves[s] = mean_ci(moving_average(cost, window, axis=1), axis=0)
        counts.extend(np.unique(curves[s][3][curves[s][3] > 0]))
    for j, (names, title, logy) in enumerate(panels):
        ax = axes[0, j]
        for s in names:
            mean, lo, hi, _ = curves[s]
            st = scheme_style(s)
            if logy:  # a band reaching <= 0 is drawn down to the smallest positive mean
                floor = np.nanmin(np.where(mean > 0, mean, np.nan)) if (mean > 0).any() else np.nan
                lo = np.where(lo > 0, lo, floor)
            ax.fill_between(x, lo, hi, color=st["color"], alpha=0.18, linewidth=0, zorder=st["zorder"] - 1)
            (line,) = ax.plot(
                x, mean, color=st["color"], linestyle=st["linestyle"], linewidth=st["linewidth"], zorder=st["zorder"]
            )
            if j == 0:
                label, n_div = _label(ds, s, "seeds")
                n_div_total += n_div
                handles.append(line)
                labels.append(label)
        if logy:
            ax.set_yscale("log")
        if title:
            ax.set_title(title, fontsize=9)
        ax.set_xlabel("block t")
        ax.set_ylabel(f"weighted cost per block $c(s_t)$\n({window}-block moving average)")
        if len(x):
            ax.set_xlim(x[0], x[-1])
    sub = [
        f"metric: weighted cost per block (8) · preset {_preset(ds)} · {_point_text(chosen)}",
        f"{_stats_text(counts, blocks)} band · trailing moving average over {window} blocks, per seed before averaging",
    ]
    return _finish(fig, "Fig. 7 — cost per block vs block", sub, (handles, labels), _diverged_note(n_div_total))


def _errorbar(ax, style: dict, x, y, *, yerr, xerr=None, capsize: float = 3, elinewidth: float = 1.0):
    """A scheme's means with their intervals (NaN half-widths drawn as none) in the scheme's style."""
    import numpy as np

    return ax.errorbar(
        x,
        y,
        yerr=np.nan_to_num(yerr),
        xerr=None if xerr is None else np.nan_to_num(xerr),
        color=style["color"],
        linestyle=style["linestyle"],
        linewidth=style["linewidth"],
        marker=style["marker"],
        markersize=4.5,
        capsize=capsize,
        elinewidth=elinewidth,
        zorder=style["zorder"],
    )


def _sweep(
    ds: xr.Dataset,
    sweep: str,
    prefer: dict,
    title: str,
    xlabel: str,
    panels: tuple[tuple[str, str, str, bool], ...],
    xscale: str = "linear",
    second_metric: str | None = None,
    only_metric: bool = False,
    fixed_text: str | None = None,
    facet: str | None = None,
) -> Figure:
    """Shared body of Figs. 8-9 and the gamma sweep: one panel per (var, title, ylabel, log y).
    ``second_metric`` replaces the subtitle's "average cost per block ..." when the figure draws
    something else beside (9a). ``facet``: a second swept axis, one row of panels per value
    (small multiples sharing the x axis)."""
    import numpy as np

    missing_diffs = [p[0] for p in panels if p[0].startswith("diff_") and p[0] not in ds.variables]
    if missing_diffs and "scheme" in ds.dims:  # a dataset combined by hand: pair it here as aggregate does
        ds = paired_differences(ds.copy(), str(ds.attrs.get("reference_scheme") or default_reference(ds)))
    panels = tuple(p for p in panels if not p[0].startswith("diff_") or p[0] in ds.variables)  # one scheme: no pairs
    _require(ds, sweep, *(p[0] for p in panels))
    if sweep not in ds.dims:
        ds = ds.expand_dims(sweep)
    ds, chosen = _fix_point(ds, panels[0][0], prefer, sweep=sweep, facet=facet)
    rows = [(None, ds)] if facet is None else [(v.item(), ds.sel({facet: v})) for v in ds[facet].values]
    fig, axes = _new_figure(len(rows), len(panels), 4.6 * len(panels), 4.0 if facet is None else 3.0, sharex=True)
    handles, labels, counts, n_div_total = [], [], [], 0
    seen: set[str] = set()
    schemes = _schemes(ds, panels[0][0])
    xs_all: set = set()
    reference = str(ds.attrs.get("reference_scheme", ""))
    cells = [(i, j, value, row, panel) for i, (value, row) in enumerate(rows) for j, panel in enumerate(panels)]
    for i, j, value, ds, (var, ptitle, ylabel, logy) in cells:
        ax = axes[i, j]
        if facet is not None:
            ptitle = f"{ptitle} — {_point_text({facet: value})}"
        paired = var.startswith("diff_")
        if paired:
            ax.axhline(0.0, color=scheme_style(reference)["color"], linewidth=1.0, linestyle=":", zorder=1)
        for s in schemes:
            if paired and s == reference:
                continue
            da = _by_scheme(ds, var, s).transpose(sweep, "seed")
            xv = da[sweep].values.astype(float)
            mean, lo, hi, n = mean_ci(da.values, axis=1)
            keep = n > 0  # outer-join holes: no run at this point
            if not keep.any():
                continue
            counts.extend(np.unique(n[keep]))
            xs_all.update(xv[keep].tolist())
            st = scheme_style(s)
            cont = _errorbar(ax, st, xv[keep], mean[keep], yerr=np.vstack([mean - lo, hi - mean])[:, keep])
            if s not in seen:
                seen.add(s)
                label, n_div = _label(ds, s, "runs")
                n_div_total += n_div
                handles.append(cont.lines[0])
                labels.append(label)
        if var == "discounted_cost":
            for line, label in _draw_bound(ax, ds, sweep, logy):
                if label not in labels:
                    handles.append(line)
                    labels.append(label)
        if logy:
            ax.set_yscale("log")
        if xscale != "linear":
            ax.set_xscale(xscale)
            ax.xaxis.set_minor_formatter("")
        if i == len(rows) - 1:
            ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(ptitle, fontsize=9)
    if xs_all and len(xs_all) <= 12:
        xt = sorted(xs_all)
        axes[0, 0].set_xticks(xt, [str(int(v)) if float(v).is_integer() and abs(v) < 1e5 else f"{v:g}" for v in xt])
    blocks = ds.sizes.get("block")
    if blocks is None:
        blocks = ds.attrs.get("blocks")
    frac = _attr_float(ds, "param_average_fraction", 0.5)
    gamma = chosen.get("gamma")
    disc = r"discounted sum cost (9a) $\Sigma_t\,\gamma^t c_t$" + (
        f" with γ = {_fmt(gamma)}" if gamma is not None else ""
    )
    second = second_metric or f"average cost per block over the last {frac:.0%} of the blocks"
    if any(p[0].startswith("diff_") for p in panels):
        second += f"; paired: minus scheme {reference}'s on the same seed (common random numbers)"
    sub = [
        f"metric: {second}" if only_metric else f"metrics: {disc}; {second}",
        f"{fixed_text or 'preset ' + _preset(ds)} · {_point_text(chosen) or 'all points'} · "
        + _stats_text(counts, int(blocks) if blocks is not None else None)
        + " error bars",
    ]
    return _finish(fig, title, sub, (handles, labels), _diverged_note(n_div_total))


BOUND_LABEL = "lower bound on every policy\n(below it: unattainable)"
UPPER_LABEL = "upper bound on the optimum\n(a policy the system can run)"
#: The panel of each scheme's gap to the lower bound, where an aggregate holds it.
GAP_PANEL = ("bound_gap_percent", "gap of (9a) to the lower bound, paired by seed", "(J − LB) / LB  (%)", False)


def _draw_bound(ax, ds: xr.Dataset, sweep: str, logy: bool) -> list[tuple[Any, str]]:
    """The optimum bracketed (note N): the lower bound's mean over seeds (each seed's drop has its
    own) dashed black, everything below it hatched (no policy's expected (9a), averaged over these
    drops, lies there), and the upper bound (a policy the system can run) dotted black."""
    import numpy as np

    out = []
    for name, style, label in (
        ("lower_bound", "--", BOUND_LABEL),
        ("upper_bound", ":", UPPER_LABEL),
    ):
        if name not in ds.variables:
            continue
        da = ds[name].transpose(sweep, "seed")
        xv = da[sweep].values.astype(float)
        mean, _, _, n = mean_ci(da.values, axis=1)
        keep = n > 0
        if not keep.any():
            continue
        order = np.argsort(xv[keep])
        x, m = xv[keep][order], mean[keep][order]
        (line,) = ax.plot(x, m, color="black", linestyle=style, linewidth=1.3, zorder=8)
        out.append((line, label))
        if name == "lower_bound":
            ax.autoscale_view()
            bottom = ax.get_ylim()[0]
            floor = m.min() / 10 if logy else min(bottom, 0.0)
            ax.fill_between(
                x, floor, m, facecolor="0.5", alpha=0.12, hatch="///", edgecolor="0.6", linewidth=0, zorder=0
            )
            ax.set_ylim(bottom=bottom if not logy else max(bottom, m.min() / 3))
    return out


def _with_gap_panel(ds: xr.Dataset, panels: tuple) -> tuple[xr.Dataset, tuple]:
    """Add the gap-to-bound panel (in percent) where the aggregate has ``bound_gap``."""
    if "bound_gap" not in ds.variables:
        return ds, panels
    pct = (100.0 * ds["bound_gap"]).assign_attrs(units="%", long_name="gap of (9a) to the lower bound")
    return ds.assign(bound_gap_percent=pct), (*panels, GAP_PANEL)


def fig_cost_vs_arrival(ds: xr.Dataset) -> Figure:
    """Fig. 8: discounted and average cost vs arrival probability (K = 50)."""
    ds, panels = _with_gap_panel(
        ds,
        (
            ("discounted_cost", "discounted sum cost", "discounted sum cost", False),
            ("average_cost", "long-run average cost per block", "average cost per block", False),
            ("diff_average_cost", "paired difference of the average cost", "Δ average cost per block", False),
        ),
    )
    return _sweep(
        ds,
        "arrival_prob",
        {"K": 50, "gamma": 0.9},
        "Fig. 8 — cost vs task arrival probability",
        "arrival probability per slot λ",
        panels,
    )


def fig_cost_vs_K(ds: xr.Dataset) -> Figure:
    """Fig. 9: discounted and average cost vs number of WDs K, log y as in the paper."""
    ds, panels = _with_gap_panel(
        ds,
        (
            ("discounted_cost", "discounted sum cost (log y)", "discounted sum cost", True),
            ("average_cost", "long-run average cost per block (log y)", "average cost per block", True),
            ("diff_average_cost", "paired difference of the average cost", "Δ average cost per block", False),
        ),
    )
    return _sweep(
        ds,
        "K",
        {"arrival_prob": 0.4, "gamma": 0.9},
        "Fig. 9 — cost vs number of WDs",
        "number of WDs K",
        panels,
    )


def fig_cost_vs_gamma(ds: xr.Dataset) -> Figure:
    """Our addition: discounted cost (scales like 1/(1-gamma), log y) and average cost vs gamma."""
    ds, panels = _with_gap_panel(
        ds,
        (
            (
                "discounted_cost",
                "discounted sum cost (log y): scales like 1/(1-γ),\nso values at different γ are not comparable",
                "discounted sum cost",
                True,
            ),
            ("average_cost", "long-run average cost per block:\ncomparable across γ", "average cost per block", False),
            ("diff_average_cost", "paired difference of the average cost", "Δ average cost per block", False),
        ),
    )
    return _sweep(
        ds,
        "gamma",
        {"K": 20, "arrival_prob": 0.4},
        "Cost vs discount factor γ (not in the paper)",
        "discount factor γ (logit scale)",
        panels,
        xscale="logit",
    )


def fig_optimality_gap(ds: xr.Dataset) -> Figure:
    """Each scheme's discounted cost (9a) against the exact optimum of the discretised model
    (scheme ``optimal``, K <= 2), paired by seed: (J - J*) / J* in percent, by arrival probability."""
    _require(ds, "discounted_cost")
    if "optimal" not in ds["scheme"].values:
        raise ValueError("figure optimality_gap: the aggregate has no scheme 'optimal' to compare with")
    opt = ds["discounted_cost"].sel(scheme="optimal")
    gap = 100.0 * (ds["discounted_cost"] - opt) / opt
    ds = ds.assign(optimality_gap=gap.assign_attrs(units="%", long_name="gap of (9a) to the optimum"))
    K = int(ds["K"].values.ravel()[0]) if "K" in ds.coords else 1
    return _sweep(
        ds,
        "arrival_prob",
        {"K": K, "gamma": 0.9},
        "Gap to the optimum on a small instance (not in the paper)",
        "arrival probability per slot λ",
        (
            ("optimality_gap", "gap to the optimum (9a), paired by seed", "(J − J*) / J*  (%)", False),
            ("discounted_cost", "discounted sum cost", "discounted sum cost", False),
        ),
        second_metric="its gap to scheme optimal, (J − J*) / J* paired by seed",
    )


def _metric_label(ds: xr.Dataset, metric: str) -> str:
    import re

    attrs = ds[metric].attrs
    text = re.sub(r",? (over )?blocks >= \d+$", "", str(attrs.get("long_name", metric)))
    text = text.split(", ")[0]
    units = attrs.get("units", "1")
    return f"{text} [{units}]" if units != "1" else text


def _swept_axes(ds: xr.Dataset, most: int = 1) -> list[str]:
    """The point dims with several values, in axis order: at most ``most`` of them."""
    varying = [d for d in (*AXES, *_other_axes(ds)) if d in ds.dims and ds.sizes[d] > 1]
    if len(varying) > most:
        axes = "axis" if most == 1 else "axes"
        raise ValueError(
            f"this figure draws at most {most} swept {axes}; {', '.join(varying)} each have several values"
        )
    return varying


def _swept_axis(ds: xr.Dataset) -> str | None:
    """The one point dim with several values (None: every axis holds one value)."""
    varying = _swept_axes(ds, 1)
    return varying[0] if varying else None


def _axis_label(ds: xr.Dataset, axis: str) -> tuple[str, str]:
    """Axis label and scale of a swept parameter: log when its largest value is 20 times the smallest."""

    names = {"K": "number of WDs K", "arrival_prob": "arrival probability per slot λ", "gamma": "discount factor γ"}
    attrs = ds[axis].attrs
    label = names.get(axis) or f"{axis}: {attrs.get('long_name', axis)}" + (
        f" [{attrs['units']}]" if attrs.get("units", "1") != "1" else ""
    )
    v = ds[axis].values.astype(float)
    log = bool((v > 0).all() and v.max() / v.min() >= 20)
    import textwrap

    return textwrap.fill(label + (" (log scale)" if log else ""), 48), "log" if log else "linear"


def _held_fixed(ds: xr.Dataset) -> str:
    """What the experiment held fixed beyond the point: its preset and its overrides."""
    import json

    try:
        over = json.loads(ds.attrs.get("experiment_config", "{}")).get("overrides", {})
    except ValueError:
        over = {}
    text = f"preset {_preset(ds)}"
    if over:
        text += ", " + ", ".join(f"{k} = {_fmt(v)}" for k, v in sorted(over.items()))
    return text


def _experiment_metric(ds: xr.Dataset) -> str:
    import json

    try:
        return json.loads(ds.attrs.get("experiment_config", "{}")).get("metric", "average_cost")
    except ValueError:
        return "average_cost"


def fig_generic(ds: xr.Dataset) -> Figure:
    """Any experiment: its metric (``metric:``, default the average cost) against its one swept axis,
    every scheme with 95% bars, and the paired difference from the reference scheme beside it."""
    metric = _experiment_metric(ds)
    _require(ds, metric)
    # two swept axes: the first along x, one row of panels per value of the second
    axis, facet = ([*_swept_axes(ds, 2), None, None])[:2]
    if axis is None:  # one point: the schemes side by side
        ds = ds.expand_dims(point=[0])
        axis, xlabel, xscale = "point", "", "linear"
    else:
        xlabel, xscale = _axis_label(ds, axis)
    panels = [(metric, _metric_label(ds, metric), _metric_label(ds, metric), False)]
    if f"diff_{metric}" in ds:
        panels.append(
            (f"diff_{metric}", f"paired difference from {ds.attrs.get('reference_scheme')}", "Δ " + panels[0][2], False)
        )
    name = str(ds.attrs.get("experiment", "experiment"))
    title = f"{name}: {panels[0][1]} vs {axis}" if axis != "point" else f"{name}: {panels[0][1]}"
    ds, panels = _with_gap_panel(ds, tuple(panels))
    fig = _sweep(
        ds,
        axis,
        {},
        title,
        xlabel,
        panels,
        xscale=xscale,
        second_metric=f"{panels[0][1]}, over the last {_attr_float(ds, 'param_average_fraction', 0.5):.0%} of the blocks",
        only_metric=True,
        fixed_text=_held_fixed(ds),
        facet=facet,
    )
    if axis == "point":
        for ax in fig.axes:
            ax.set_xticks([])
    return fig


def fig_tradeoff(ds: xr.Dataset) -> Figure:
    """Energy against delay for each scheme, one point per value of the swept axis (the curve
    drift-plus-penalty papers draw as V moves), 95% intervals both ways."""
    import numpy as np

    _require(ds, "latency", "mean_energy")
    axis = _swept_axis(ds)
    if axis is None:
        ds = ds.expand_dims(point=[0])
        axis = "point"
    ds, chosen = _fix_point(ds, "latency", {}, sweep=axis)
    fig, axes = _new_figure(1, 1, 7.0, 4.8)
    ax = axes[0, 0]
    handles, labels, counts, n_div_total = [], [], [], 0
    for s in _schemes(ds, "latency"):
        x = _by_scheme(ds, "latency", s).transpose(axis, "seed").values
        y = _by_scheme(ds, "mean_energy", s).transpose(axis, "seed").values
        mx, xlo, xhi, n = mean_ci(x, axis=1)
        my, ylo, yhi, _ = mean_ci(y, axis=1)
        keep = n > 0
        if not keep.any():
            continue
        counts.extend(np.unique(n[keep]))
        st = scheme_style(s)
        cont = _errorbar(
            ax,
            st,
            mx[keep],
            my[keep],
            xerr=np.vstack([mx - xlo, xhi - mx])[:, keep],
            yerr=np.vstack([my - ylo, yhi - my])[:, keep],
            capsize=2.5,
            elinewidth=0.9,
        )
        if axis != "point":
            vals = ds[axis].values
            distinct = np.unique(np.round(mx[keep], 12)).size > 1
            for xv, yv, v in zip(mx[keep], my[keep], vals[keep], strict=True):
                if distinct:  # a scheme the axis does not move sits at one point: no labels
                    ax.annotate(
                        _fmt(v.item() if hasattr(v, "item") else v),
                        (xv, yv),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize=7,
                        color=st["color"],
                    )
        label, n_div = _label(ds, s, "runs")
        n_div_total += n_div
        handles.append(cont.lines[0])
        labels.append(label)
    ax.set_xlabel(_metric_label(ds, "latency"))
    ax.set_ylabel(_metric_label(ds, "mean_energy"))
    name = str(ds.attrs.get("experiment", "experiment"))
    moving = f"one point per value of {axis}, labelled" if axis != "point" else "one point per scheme"
    sub = [
        f"{moving} · over the last {_attr_float(ds, 'param_average_fraction', 0.5):.0%} of the blocks",
        f"{_held_fixed(ds)} · {_point_text(chosen)} · {_stats_text(counts, ds.sizes.get('block'))} bars both ways",
    ]
    return _finish(fig, f"{name}: energy–delay trade-off", sub, (handles, labels), _diverged_note(n_div_total))


FIGURES: dict[str, Callable[[Any], Any]] = {
    "convergence": fig_convergence,
    "cost_vs_block": fig_cost_vs_block,
    "cost_vs_arrival": fig_cost_vs_arrival,
    "cost_vs_K": fig_cost_vs_K,
    "cost_vs_gamma": fig_cost_vs_gamma,
    "optimality_gap": fig_optimality_gap,
    "generic": fig_generic,
    "tradeoff": fig_tradeoff,
}


# ----------------------------------------------------------------------------- entry points


def _check_name(name: str) -> Callable:
    try:
        return FIGURES[name]
    except KeyError:
        raise ParamError(f"figure: must be one of {', '.join(FIGURES)}, got {name!r}") from None


def build_figure(name: str, ds: xr.Dataset) -> Figure:
    """The matplotlib Figure of ``name`` for the dataset ``ds`` (not saved)."""
    func = _check_name(name)
    _setup()
    return func(ds)


def _save_atomic(fig: Figure, targets: list[tuple[Path, str]]) -> None:
    """Render to temporary names beside the targets, then rename: a failure leaves no final file."""
    from .atomic import atomic_paths

    with atomic_paths(*(path for path, _ in targets), fsync=False) as tmps:
        for (path, fmt), tmp in zip(targets, tmps, strict=True):
            meta = {"CreationDate": None} if fmt == "pdf" else {}  # keep the PDF bytes reproducible
            try:
                fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", pad_inches=0.08, metadata=meta)
            except OSError as e:
                # Name the file the user asked for, not the temporary one.
                raise OSError(e.errno, e.strerror or str(e), str(path)) from None


def plot(name: str, input_path: str | os.PathLike, png_path: str | os.PathLike, pdf_path: str | os.PathLike) -> None:
    """Draw figure ``name`` from the aggregated NetCDF ``input_path`` into a PNG and a PDF."""
    _check_name(name)
    png, pdf = Path(png_path), Path(pdf_path)
    if png.suffix.lower() != ".png":
        raise ParamError(f"png: must end in .png, got {str(png_path)!r}")
    if pdf.suffix.lower() != ".pdf":
        raise ParamError(f"pdf: must end in .pdf, got {str(pdf_path)!r}")
    if not Path(input_path).is_file():
        raise ParamError(f"input: no such file: {str(input_path)!r}")
    import xarray as xr

    try:
        ds = xr.open_dataset(input_path)
    except (OSError, ValueError) as e:
        reason = " ".join(str(e).split())  # xarray's messages span lines; ours is one
        raise ParamError(f"input: cannot read {str(input_path)!r} as NetCDF: {reason}") from None
    with ds:
        fig = build_figure(name, ds)
    _save_atomic(fig, [(png, "png"), (pdf, "pdf")])
