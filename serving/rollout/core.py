"""The rollout's decisions, on any servers that speak ``servers.ModelServer``, with an injected clock.

``roll`` (also a rollback: the version may be older than the one serving):

1. every server: make the version serving explicit (TF Serving: label it ``stable`` if nothing is;
   then wait for the gateway to follow), and ask it to load version N beside it;
2. every server (each on a thread of its own, so each step is timed when it happens): wait until N
   is really ready (TF Serving: AVAILABLE; TorchServe: every worker
   READY, then warmed), then run the manifest's held-out check against N, by number, on each of its
   backends. A version that does not load, or whose answers disagree, is refused: it is removed from
   every server that loaded it, the version serving now never stopped serving, and nothing switched;
3. every server: switch (TF Serving: ``stable`` -> N; TorchServe: set-default N), one right after
   the other; end any gateway canary split;
4. wait ``drain_s`` after the switch (the gateway follows, requests in flight to the old version
   finish), then unload every other version, and write what serves into the files a restart reads.

``canary``: steps 1-2, then label N ``canary`` and split the gateway's traffic; the old version stays
the default. ``promote``: each server's canary becomes its default, the split ends, then step 4.
``rollback``: the split ends, then (after the drain) the canary is unloaded.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from serving.rollout.log import Action, Event, RolloutLog, Step
from serving.rollout.servers import LoadFailed, ModelServer, ServerError
from serving.rollout.settings import POLL_S, RolloutSettings
from training.manifest import CheckResult

T = TypeVar("T")
# The held-out check: (gateway backend, version, its answers to the check's rows) -> the verdict.
Check = Callable[[str, int, np.ndarray], CheckResult]


class GatewaySplit(Protocol):
    def set_canary(self, backend: str, version: int, percent: float) -> None: ...

    def clear_canary(self, backend: str) -> None: ...


@dataclass(frozen=True)
class Clock:
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


class Refused(Exception):
    def __init__(self, server: str, reason: str):
        super().__init__(reason)
        self.server, self.reason = server, reason


class Rollout:
    def __init__(
        self,
        settings: RolloutSettings,
        servers: Sequence[ModelServer],
        check: Check,
        rows: np.ndarray,
        gateway: GatewaySplit | None = None,
        clock: Clock | None = None,
        notify: Callable[[str], None] = print,
    ):
        self.settings, self.servers, self.check, self.rows = settings, list(servers), check, rows
        self.gateway, self.clock, self.notify = gateway, clock or Clock(), notify
        self._t0 = self.clock.monotonic()
        self._lock = threading.Lock()
        self.log = RolloutLog(
            action=settings.action,
            version=settings.version,
            previous={},
            servers=tuple(s.name for s in self.servers),
            target=str(settings.target),
            started_wall=self.clock.wall(),
        )

    def run(self) -> RolloutLog:
        try:
            self.log.previous = {s.name: s.serving() for s in self.servers}
            if self.settings.action in (Action.ROLL, Action.CANARY):
                self._roll()
            elif self.settings.action is Action.PROMOTE:
                self._promote()
            else:
                self._rollback()
        except ServerError as exc:
            self.log.ok, self.log.message = False, str(exc)
        return self.log

    # ---- the actions -------------------------------------------------------------------------

    def _roll(self) -> None:
        s, v = self.settings, self.settings.version
        assert v is not None
        canary = s.action is Action.CANARY
        if canary and self.gateway is None:
            raise ServerError("a canary split needs the gateway, and none is configured")
        if not canary and all(self.log.previous[x.name] == v for x in self.servers):
            self._done(True, f"version {v} already serves on {self._names()}: nothing to do")
            return
        pinned = [x for x in self.servers if x.prepare()]
        for x in pinned:
            self._step(x, Event.PINNED, self.log.previous[x.name] or 0, "labelled stable before anything moves")
        if pinned:
            self.clock.sleep(s.follow_s)
        # Each server loads, gets ready and is checked on a thread of its own (TorchServe's
        # registration takes seconds; TF Serving's load runs meanwhile), each step timed as it happens.
        with ThreadPoolExecutor(max_workers=len(self.servers), thread_name_prefix="rollout") as pool:
            outcomes = list(pool.map(functools.partial(self._bring_up, v), self.servers))
        refusals = [o for o in outcomes if o is not None]
        if refusals:
            self._refuse(refusals, v)
            return
        if canary:
            self._canary(v)
            return
        for x in self.servers:
            x.switch(v)
            self._step(x, Event.SWITCHED, v, f"from version {self.log.previous[x.name]}")
        self._clear_split(required=False)
        self._drain_then_unload({x.name: v for x in self.servers}, Event.OLD_UNLOADED)
        self._done(True, f"version {v} serves on {self._names()}; {self._before()} unloaded after the drain")

    def _canary(self, v: int) -> None:
        pct = self.settings.canary_percent
        assert self.gateway is not None and pct is not None
        for x in self.servers:
            x.mark_canary(v)
            for backend in x.backends:
                self.gateway.set_canary(backend, v, pct)
            self._step(x, Event.CANARY_SET, v, f"{pct:g} % of clients on {', '.join(x.backends)}")
        self._done(
            True,
            f"version {v} is the canary for {pct:g} % of clients on {self._names()} ({self._before()} stays the "
            "default): `--promote` makes it the default, `--rollback` drops it",
        )

    def _promote(self) -> None:
        canaries = self._canaries()
        self.log.version = max(canaries.values())
        for x in self.servers:
            x.switch(canaries[x.name])
            self._step(x, Event.SWITCHED, canaries[x.name], f"canary promoted from version {self.log.previous[x.name]}")
        self._clear_split(required=True)
        self._drain_then_unload(canaries, Event.OLD_UNLOADED)
        self._done(
            True, f"the canary serves on {self._names()} ({self._versions(canaries)}); {self._before()} unloaded"
        )

    def _rollback(self) -> None:
        canaries = self._canaries()
        self.log.version = max(canaries.values())
        self._clear_split(required=True)
        self._drain(Event.CANARY_CLEARED)
        for x in self.servers:
            x.remove(canaries[x.name], self.settings.load_timeout_s, POLL_S)
            self._step(x, Event.NEW_UNLOADED, canaries[x.name], "canary rolled back")
            x.persist()
        self._done(True, f"canary {self._versions(canaries)} unloaded; {self._before()} serves alone")

    # ---- steps -------------------------------------------------------------------------------

    def _bring_up(self, v: int, x: ModelServer) -> Refused | None:
        """Load ``v`` on ``x``, wait until it is ready, check it: None, or why it is refused."""
        s = self.settings
        try:
            self._step(x, Event.LOAD_REQUESTED, v, f"beside version {self.log.previous[x.name]}")
            self._refusing(x, functools.partial(x.load, v, s.load_timeout_s))
            how = self._refusing(x, functools.partial(x.wait_ready, v, s.load_timeout_s, POLL_S))
            self._step(x, Event.READY, v, how)
            self._verify(x, v)
        except Refused as exc:
            return exc
        return None

    def _verify(self, x: ModelServer, v: int) -> None:
        answers = self._refusing(x, functools.partial(x.answers, v, self.rows))
        results = [self.check(backend, v, probs) for backend, probs in answers.items()]
        failed = [r.message for r in results if not r.passed]
        if failed:
            raise Refused(x.name, "its answers disagree with the manifest's held-out check: " + "; ".join(failed))
        self._step(x, Event.VERIFIED, v, "; ".join(r.message for r in results))

    def _refuse(self, refusals: list[Refused], v: int) -> None:
        """Remove ``v`` from every server (those that loaded it, and any still loading it)."""
        for r in refusals:
            self._append(self._make(r.server, Event.REFUSED, v, r.reason))
            self.notify(f"{r.server}: version {v} REFUSED: {r.reason}")
        for x in self.servers:
            x.remove(v, self.settings.load_timeout_s, POLL_S)
            self._step(x, Event.NEW_UNLOADED, v, "it never received traffic")
        why = "; ".join(f"on {r.server}: {r.reason}" for r in refusals)
        self._done(False, f"version {v} refused {why}. {self._before().capitalize()} kept serving throughout")

    def _clear_split(self, required: bool) -> None:
        if self.gateway is None:
            if required:
                raise ServerError("ending a canary split needs the gateway, and none is configured")
            return
        for x in self.servers:
            for backend in x.backends:
                try:
                    self.gateway.clear_canary(backend)
                except ServerError as exc:
                    if required:
                        raise
                    self.notify(f"warning: {exc}")
                    return
            step = self._make(x.name, Event.CANARY_CLEARED, self.log.version or 0, "")
            self._append(step)
            self.notify(f"{step.at_s:7.2f} s  {x.name}: the gateway's canary split ended ({', '.join(x.backends)})")

    def _drain(self, after: Event) -> None:
        """Wait until ``drain_s`` has passed since the last ``after`` step."""
        last = max((st.at_s for st in self.log.steps if st.event is after), default=self._now())
        remaining = self.settings.drain_s - (self._now() - last)
        if remaining > 0:
            self.notify(f"draining: {remaining:.1f} s for the gateway to follow and requests in flight to finish")
            self.clock.sleep(remaining)

    def _drain_then_unload(self, keep: dict[str, int], event: Event) -> None:
        self._drain(Event.SWITCHED)
        olds = {x.name: [o for o in x.loaded() if o != keep[x.name]] for x in self.servers}
        for x in self.servers:
            for old in olds[x.name]:  # the step names the version that drained, not the one serving
                detail = f"{self.settings.drain_s:g} s after the switch to version {keep[x.name]}"
                self._step(x, Event.DRAINED, old, detail)
        for x in self.servers:
            for old in olds[x.name]:
                x.remove(old, self.settings.load_timeout_s, POLL_S)
                self._step(x, event, old, "")
            x.persist()

    def _canaries(self) -> dict[str, int]:
        canaries = {x.name: x.canary() for x in self.servers}
        missing = [name for name, c in canaries.items() if c is None]
        if missing:
            raise ServerError(
                f"no canary on {', '.join(missing)}: nothing to {self.settings.action} "
                "(roll back a switched version by rolling the older one: `make rollout VERSION=M`)"
            )
        return {name: c for name, c in canaries.items() if c is not None}

    def _refusing(self, x: ModelServer, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except LoadFailed as exc:
            raise Refused(x.name, str(exc)) from exc

    # ---- the log -----------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.monotonic() - self._t0

    def _make(self, server: str, event: Event, version: int, detail: str) -> Step:
        return Step(server, event, version, round(self._now(), 4), self.clock.wall(), detail)

    def _append(self, step: Step) -> None:
        with self._lock:
            self.log.steps.append(step)

    def _step(self, x: ModelServer, event: Event, version: int, detail: object) -> None:
        step = self._make(x.name, event, version, str(detail))
        self._append(step)
        self.notify(f"{step.at_s:7.2f} s  {x.name}: {event} version {version}" + (f" ({detail})" if detail else ""))

    def _done(self, ok: bool, message: str) -> None:
        self.log.ok, self.log.message = ok, message

    def _names(self) -> str:
        return " and ".join(x.name for x in self.servers)

    def _before(self) -> str:
        versions = {v for v in self.log.previous.values()}
        return "version " + "/".join(str(v) for v in sorted(v for v in versions if v is not None))

    @staticmethod
    def _versions(by_server: dict[str, int]) -> str:
        return ", ".join(f"{name} {v}" for name, v in by_server.items())
