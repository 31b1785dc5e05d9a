"""Option measured for the throughput issue: Algorithms 1 and 2's learners in float32.

    python benchmarks/bench_float32.py            # K = 10, 100, 1000 with 1 and 10 seeds
    python benchmarks/bench_float32.py --quick

The learners' arrays (feature vectors, weights, actions, the state logits) and their inputs
(reward, reward gradient, next state) are cast to float32 for a run of ``simulate_arrays``
(scheme ``proposed``); queues, energies and costs stay float64 in the environment. It reports
both rates and how far the run moves: the largest relative difference of the per-block cost,
and of the long-run average cost per seed, against float64. Not part of the package.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import sys  # noqa: E402

import numpy as np  # noqa: E402

from mecmodel.policies import qlearning  # noqa: E402
from mecmodel.simulation import simulate_arrays  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_variants import compare, max_rel_diff  # noqa: E402

_init, _learn, _observe = qlearning.OnlineQ.__init__, qlearning.OnlineQ.learn, qlearning.OnlineQ.observe


def _init32(self, v, *args, **kwargs):
    _init(self, v, *args, **kwargs)
    for name in ("v_a", "v_s", "a", "w"):
        setattr(self, name, getattr(self, name).astype(np.float32))


def _observe32(self, x):
    return _observe(self, np.asarray(x, dtype=np.float32))


def _learn32(self, t, r, dr_da, x_next):
    f32 = np.float32
    return _learn(self, t, np.asarray(r, f32), np.asarray(dr_da, f32), np.asarray(x_next, f32))


def run(P, seeds, blocks, dtype):
    if dtype == "float32":
        qlearning.OnlineQ.__init__, qlearning.OnlineQ.learn = _init32, _learn32
        qlearning.OnlineQ.observe = _observe32
    try:
        return simulate_arrays(P, "proposed", seeds, blocks)
    finally:
        qlearning.OnlineQ.__init__, qlearning.OnlineQ.learn, qlearning.OnlineQ.observe = _init, _learn, _observe


def main(argv=None) -> int:
    return compare(
        __doc__.splitlines()[0],
        run,
        ("float64", "float32"),
        {
            "cost, max rel.": lambda x, y: max_rel_diff(x["series"]["cost"], y["series"]["cost"]),
            "avg cost, max rel.": lambda x, y: max_rel_diff(x["average_cost"], y["average_cost"]),
        },
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
