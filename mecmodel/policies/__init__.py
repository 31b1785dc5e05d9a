"""WD and server policies: the interface (:mod:`.base`), Algorithms 1 and 2 (:mod:`.qlearning`)
and fixed rules (:mod:`.rules`). ``docs/schemes.md`` is the guide for writing one."""

from .base import Policy, PolicyContext, ServerPolicy, Transition, WDPolicy

__all__ = ["Policy", "PolicyContext", "ServerPolicy", "Transition", "WDPolicy"]
