"""Worked example of a scheme from outside the package (docs/schemes.md): queue-aware WDs
and a full-speed server. Decentralised (section IV): WD k reads only q[:, k] and h[:, k];
the server reads nothing. Run it with ``--scheme-module examples/schemes/threshold.py``."""

import numpy as np

from mecmodel.channel import power_for_bits
from mecmodel.policies import ServerPolicy, WDPolicy
from mecmodel.schemes import register

THRESHOLD = 2  # tasks: a WD offloads only while more than this many wait in its own queue


class Threshold(WDPolicy):
    """Above the threshold, the power (4) that sends a whole back end (W cycles), capped at
    p_max; else p = 0 (compute locally). Elementwise in (seed, WD): no WD sees another."""

    def act(self, obs):
        P = self.ctx.params
        p = power_for_bits(obs.h, P.zeta * P.task_cycles, P.bandwidth, P.snr_gap, P.tau)
        return np.where(obs.q > THRESHOLD * P.task_cycles, np.minimum(p, P.p_max), 0.0)


class Full(ServerPolicy):
    """Every slot at f_ser_max (the server never runs faster than its queue needs)."""

    def act(self, obs):
        P = self.ctx.params
        return np.full((self.ctx.S, P.n_slots), P.f_ser_max)


register(
    "threshold",
    wd=Threshold,
    server=Full,
    description=f"reference: offload a back end while > {THRESHOLD} tasks wait; server at f_ser_max",
    kind="reference",
    style={"color": "0.45", "linestyle": (0, (1, 1)), "marker": "*", "linewidth": 1.2, "zorder": 3},
)
