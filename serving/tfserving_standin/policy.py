"""Which version to load or unload next: TF Serving's ``AvailabilityPreservingPolicy``, the policy
``tensorflow_model_server`` runs (``tensorflow_serving/core/availability_preserving_policy.cc``).

A version leaves only when another can serve in its place: an un-aspired version is unloaded when no
version is aspired any more, when an aspired one is AVAILABLE, or when more than one un-aspired
version is; otherwise it stays, so a new version that fails to load leaves the old one serving.
Unloads come before loads (the lowest un-aspired version first), then the highest new aspired
version loads. One action at a time; the manager asks again after each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal


class Phase(Enum):
    """A version's place in the manager (the real server's LoaderHarness states, coarsened)."""

    NEW = "new"  # aspired, never tried
    LOADING = "loading"
    READY = "ready"  # AVAILABLE
    ERROR = "error"  # its load failed; it stays failed while it is aspired
    UNLOADING = "unloading"


@dataclass(frozen=True)
class Snapshot:
    version: int
    aspired: bool
    phase: Phase


@dataclass(frozen=True)
class Action:
    kind: Literal["load", "unload"]
    version: int


def next_action(versions: Iterable[Snapshot]) -> Action | None:
    snaps = list(versions)
    has_aspired = any(s.aspired for s in snaps)
    has_aspired_serving = any(s.aspired and s.phase is Phase.READY for s in snaps)
    unaspired_serving = [s.version for s in snaps if not s.aspired and s.phase is Phase.READY]
    if unaspired_serving and (not has_aspired or has_aspired_serving or len(unaspired_serving) > 1):
        return Action("unload", min(unaspired_serving))
    new = [s.version for s in snaps if s.aspired and s.phase is Phase.NEW]
    if new:
        return Action("load", max(new))
    return None
