"""WD and server policies: the interface (``.base``), Algorithms 1 and 2 (``.qlearning``)
and fixed rules (``.rules``). ``docs/schemes.md`` is the guide for writing one."""

from .base import Policy, PolicyContext, ServerPolicy, Transition, WDPolicy

__all__ = ["Policy", "PolicyContext", "ServerPolicy", "Transition", "WDPolicy"]
