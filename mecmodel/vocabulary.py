"""The words every layer shares, declared once and importing nothing of the package.

* :data:`AXES`: the grid axes of every sweep and their run-path prefixes;
* :data:`POINT_DIMS`: the coordinates of one run (the axes and the scheme);
* :func:`ma_window`: the moving-average window of the per-block figures (plots draw it, the
  report's captions state it).
"""

from __future__ import annotations

#: Swept model parameters, in run-path order, with the prefix of their path component.
AXES: dict[str, str] = {"K": "K", "arrival_prob": "lam", "gamma": "gamma"}
#: Coordinates of one run: the swept parameters and the scheme (length-1 dims of a run file).
POINT_DIMS: tuple[str, ...] = (*AXES, "scheme")
#: Blocks in the moving average of cost_vs_block.
MA_WINDOW = 25


def ma_window(blocks: int) -> int:
    """The moving-average window for a run of ``blocks`` blocks: MA_WINDOW, shorter for short runs."""
    return MA_WINDOW if blocks >= 4 * MA_WINDOW else max(1, blocks // 4)
