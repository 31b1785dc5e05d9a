"""Size, time and memory of the exact solver on one user drop, and Theorem 1 tested on it.

    python scripts/solve_optimum.py [--K 1|2] [--seed 0] [--preset default]

Prints the discretised model's states x actions, the value-iteration iterations and time, the
process's peak memory, the expected discounted cost (9a) from empty queues of the joint optimum
and of Theorem 1's decomposition on the discretised model (docs/model.md, note J), and the
optimum of the model itself bracketed: the Lagrangian lower bound and the upper bound of
mecmodel.bounds (note N), between which the true optimum lies (the discretised model's value need
not: it prices each fading bin at its median and truncates the queues).
"""

from __future__ import annotations

import argparse
import resource
import time

from mecmodel import bounds, optimum
from mecmodel.env import MECEnv
from mecmodel.params import make_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="default")
    a = ap.parse_args()
    P = make_params(a.preset, {"K": a.K})
    gains = MECEnv(P, [a.seed]).mean_gain
    m = optimum.model_for(P, gains[0])
    t0 = time.perf_counter()
    joint = optimum.solve(m, P.gamma)
    t1 = time.perf_counter()
    dec = optimum.decomposed(m, P.gamma)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"K = {a.K}, seed {a.seed}, preset {a.preset}, gamma {P.gamma:g}")
    print(f"states {joint.states}, actions {joint.actions}, iterations {joint.iterations}")
    print(f"joint solve {t1 - t0:.1f} s, decomposition {t2 - t1:.1f} s, peak memory {peak:.0f} MB")
    print(f"expected (9a) from empty queues: joint {joint.start_value():.2f}, decomposed {dec.start_value():.2f}")
    lo, up = bounds.lower_bound(P, gains).lower_bound[0], bounds.upper_bound(P, gains)[0]
    print(f"the optimum bracketed (mecmodel.bounds): [{lo:.2f}, {up:.2f}]")


if __name__ == "__main__":
    main()
