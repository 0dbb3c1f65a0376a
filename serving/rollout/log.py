"""The rollout's typed log: every step, per server, with its time.

``RolloutLog`` is what ``rollout.run`` hands back and ``python -m serving.rollout --log FILE`` writes
as JSON (``to_json`` / ``from_json``); a load-test report reads it to put each switch on its time axis
(``time_to_serving``: from "load requested" to "switched", per server).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Action(StrEnum):
    ROLL = "roll"  # load, verify, switch, unload the old version (a rollback when the version is older)
    CANARY = "canary"  # load, verify, label it canary and split the gateway's traffic; keep the old one
    PROMOTE = "promote"  # the canary becomes the default; the old version is unloaded
    ROLLBACK = "rollback"  # the canary is dropped; the old version keeps serving alone


class Event(StrEnum):
    PINNED = "pinned"  # TF Serving: `stable` put on the version serving, before anything else moves
    LOAD_REQUESTED = "load requested"
    READY = "available/ready"  # TF Serving: AVAILABLE; TorchServe: every worker READY, then warmed
    VERIFIED = "verified"  # the manifest's held-out check passed on this server
    SWITCHED = "switched"  # requests without a version go to the new version from here on
    CANARY_SET = "canary set"
    CANARY_CLEARED = "canary cleared"
    DRAINED = "drained"  # the old version: the drain wait after the switch is over
    OLD_UNLOADED = "old unloaded"
    REFUSED = "refused"  # the version failed to load or its answers disagreed: it never got traffic
    NEW_UNLOADED = "new unloaded"  # a refused or rolled-back version is gone again


@dataclass(frozen=True)
class Step:
    server: str  # tfserving, torchserve, or "gateway"
    event: Event
    version: int
    at_s: float  # seconds since the rollout started (monotonic clock)
    wall: float  # Unix time, to line the step up with other records
    detail: str = ""


@dataclass
class RolloutLog:
    action: Action
    version: int | None  # the version rolled to (for promote/rollback: the canary's)
    previous: dict[str, int | None]  # server -> the version serving before
    servers: tuple[str, ...]
    target: str  # native or compose
    started_wall: float
    steps: list[Step] = field(default_factory=list)
    ok: bool = False
    message: str = ""

    def at(self, server: str, event: Event) -> Step | None:
        """The first step of ``event`` on ``server``."""
        return next((s for s in self.steps if s.server == server and s.event is event), None)

    def time_to_serving(self, server: str) -> float | None:
        """Seconds from "load requested" to "switched" on ``server`` (None if it never switched)."""
        start, end = self.at(server, Event.LOAD_REQUESTED), self.at(server, Event.SWITCHED)
        return None if start is None or end is None else end.at_s - start.at_s

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["servers"] = list(self.servers)
        out["time_to_serving_s"] = {s: self.time_to_serving(s) for s in self.servers}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RolloutLog:
        return cls(
            action=Action(data["action"]),
            version=data["version"],
            previous=dict(data["previous"]),
            servers=tuple(data["servers"]),
            target=data["target"],
            started_wall=float(data["started_wall"]),
            steps=[Step(**{**s, "event": Event(s["event"])}) for s in data["steps"]],
            ok=bool(data["ok"]),
            message=data["message"],
        )

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path
