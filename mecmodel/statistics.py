"""Statistics over seeds, the same everywhere they are shown (figures, tables, scripts).

* ``mean_ci``: the mean over seeds and its Student-t confidence interval;
* ``paired_differences``: each scheme's per-seed metrics minus the reference scheme's on the
  same seed (common random numbers, docs/model.md note L);
* ``moving_average``: the trailing mean of the per-block figures.

numpy (and scipy.special for the t quantile) are imported inside the functions, so that importing
this module is cheap.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from .params import ParamError
from .vocabulary import METRIC_NAMES

if TYPE_CHECKING:
    import numpy as np

#: How figures and tables name the interval ``mean_ci`` gives.
CI_TEXT = "mean over seeds, 95% t-interval"


def mean_ci(a: np.ndarray, axis: int = 0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t confidence interval along ``axis``, ignoring NaN.

    Returns ``(mean, lo, hi, n)``; where fewer than two finite values exist the bounds are NaN
    (and the mean is NaN where there are none).
    """
    import numpy as np
    from scipy import special  # stdtrit is what scipy.stats.t.ppf computes, without importing scipy.stats

    a = np.asarray(a, dtype=float)
    ok = np.isfinite(a)
    n = ok.sum(axis=axis)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.where(ok, a, np.nan), axis=axis)
        sd = np.nanstd(np.where(ok, a, np.nan), axis=axis, ddof=1)
        q = special.stdtrit(np.maximum(n - 1, 1), 0.5 + level / 2)  # the Student-t quantile
        half = np.where(n >= 2, q * sd / np.sqrt(np.maximum(n, 1)), np.nan)
    return mean, mean - half, mean + half, n


def moving_average(a: np.ndarray, window: int, axis: int = -1) -> np.ndarray:
    """Trailing mean over the last ``window`` finite values along ``axis`` (shorter at the start)."""
    import numpy as np

    a = np.moveaxis(np.asarray(a, dtype=float), axis, -1)
    ok = np.isfinite(a)
    csum = np.cumsum(np.where(ok, a, 0.0), axis=-1)
    ccnt = np.cumsum(ok, axis=-1)
    pad = [(0, 0)] * (a.ndim - 1) + [(1, 0)]
    csum, ccnt = np.pad(csum, pad), np.pad(ccnt, pad)
    idx = np.arange(1, a.shape[-1] + 1)
    lo = np.maximum(idx - window, 0)
    s = csum[..., idx] - csum[..., lo]
    c = ccnt[..., idx] - ccnt[..., lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(c > 0, s / np.maximum(c, 1), np.nan)
    return np.moveaxis(out, -1, axis)


def default_reference(ds) -> str:
    """The scheme others are paired with when the experiment names none: proposed, else the first."""
    names = [str(s) for s in ds["scheme"].values]
    return "proposed" if "proposed" in names else names[0]


def paired_differences(ds, reference: str):
    """Each scheme's per-seed metrics minus the reference scheme's on the same seed: the schemes of a
    point share their random draws (common random numbers), so the paired difference's interval is
    the one that says whether a scheme is lower (docs/model.md, note L)."""
    if reference not in ds["scheme"].values:
        raise ParamError(f"reference: scheme {reference!r} is not in the aggregate ({', '.join(ds['scheme'].values)})")
    ref = ds.sel(scheme=reference, drop=True)
    for name in METRIC_NAMES:
        if name not in ds:
            continue
        diff = ds[name] - ref[name]
        diff.attrs = {
            "units": ds[name].attrs.get("units", "1"),
            "long_name": f"{ds[name].attrs.get('long_name', name)}; minus the reference scheme's on the same seed",
            "reference_scheme": reference,
        }
        ds[f"diff_{name}"] = diff.transpose(*ds[name].dims)
    ds.attrs["reference_scheme"] = reference
    return ds
