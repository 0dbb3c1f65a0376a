"""The chaos run's analysis and report: open-loop load through ``auto`` while the routed server is
SIGKILLed; what failed, how fast ``auto`` answered from the other server, when the killed one was
READY and back in rotation, and the p99 in each phase. Pure functions of one run's table and its
event times (seconds from the schedule's origin), so they are tested without a stack."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from load_tests.contracts import VIA
import matplotlib.pyplot as plt

from load_tests.reports import plots  # noqa: F401  (selects the file-only backend first)

# The goals for a chaos run.
MAX_FAILED_SHARE = 0.005  # fewer than 0.5 % of requests failed ...
MAX_FAILED_AFTER_BREAKER = 0  # ... and none once the killed server's circuit is open
PHASES = ("before", "outage", "rejoining", "after")
PHASE_HELP = {
    "before": "sent before the fault",
    "outage": "from the fault until the server is READY again",
    "rejoining": "from READY until auto answers from it again (the breaker's probe)",
    "after": "back in rotation until the end",
}


def _p(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def analyse(table: dict[str, np.ndarray], events: Mapping[str, float | None], victim: str) -> dict[str, Any]:
    """``table``: stats.open_loop_table columns over the whole run (t: intended offset s, ms, ok,
    code, via); ``events``: kill_s, ready_s (the killed server READY again), circuit_open_s."""
    t, ms, ok, via = table["t"], table["ms"], table["ok"], table["via"]
    done_s = t + np.where(np.isfinite(ms), ms, 0) / 1e3
    kill = float(events["kill_s"] or 0.0)
    victim_code = VIA.index(victim)
    after_kill = t >= kill
    by_other = ok & (via != victim_code) & (via > 0) & (done_s >= kill)
    failover_s = float(done_s[by_other].min() - kill) if by_other.any() else None
    # Back in rotation: the first request the killed server answered among those sent after auto
    # had moved to the other (earlier ones were in flight, or sent, before the kill took effect).
    moved = float(t[by_other].min()) if by_other.any() else math.inf
    back = ok & (via == victim_code) & after_kill & (t > moved)
    back_s = float(t[back].min() - kill) if back.any() else None
    ready_s = events.get("ready_s")
    ready_rel = None if ready_s is None else ready_s - kill
    end = float(t.max()) if len(t) else 0.0
    ready_at = kill + (ready_rel if ready_rel is not None else math.inf)
    back_at = kill + (back_s if back_s is not None else math.inf)
    # A server can answer before its readiness check notices (compose's healthcheck runs every few
    # seconds): then the outage ends when it answers again and there is no rejoining phase.
    outage_end = min(ready_at, back_at)
    bounds = {
        "before": (0.0, kill),
        "outage": (kill, outage_end),
        "rejoining": (outage_end, back_at),
        "after": (back_at, math.inf),
    }
    phases = {}
    for name, (lo, hi) in bounds.items():
        sel = (t >= lo) & (t < hi)
        lat = ms[sel & ok]
        served = via[sel & ok]
        phases[name] = {
            "from_s": round(lo - kill, 3) if math.isfinite(lo) else None,
            "to_s": round(min(hi, end) - kill, 3) if math.isfinite(min(hi, end)) else None,
            "requests": int(sel.sum()),
            "failed": int((sel & ~ok).sum()),
            "p50_ms": _p(lat, 50),
            "p99_ms": _p(lat, 99),
            "served_by": {VIA[i] or "?": int((served == i).sum()) for i in np.unique(served)},
        }
    opened = events.get("circuit_open_s")
    failed_after_breaker = int((~ok & (t >= opened)).sum()) if opened is not None else None
    codes = table["code"][~ok]
    total, failed = len(t), int((~ok).sum())
    failed_share = failed / total if total else math.nan
    result: dict[str, Any] = {
        "victim": victim,
        "requests": total,
        "failed": failed,
        "failed_share": failed_share,
        "failed_codes": {str(int(c)): int((codes == c).sum()) for c in np.unique(codes)},
        "failed_after_breaker_opened": failed_after_breaker,
        "failover_s": failover_s,
        "ready_again_s": ready_rel,
        "back_in_rotation_s": back_s,
        "circuit_open_s": None if opened is None else opened - kill,
        "phases": phases,
    }
    result["goals"] = {
        "failed_share": failed_share < MAX_FAILED_SHARE,
        "none_after_breaker": failed_after_breaker is not None and failed_after_breaker <= MAX_FAILED_AFTER_BREAKER,
    }
    return result


# What each fault did, for the progress line and the report ({stall_s}: the stall's length).
FAULT_DONE = {
    "kill": "SIGKILLed",
    "stall": "stalled (SIGSTOP, SIGCONT {stall_s:g} s later)",
    "hang": "hung (SIGSTOP, never resumed)",
}
GOALS = {
    "failed_share": f"fewer than {MAX_FAILED_SHARE:.1%} of requests failed",
    "none_after_breaker": "none failed once the killed server's circuit was open",
}


def verdict(r: dict[str, Any]) -> list[str]:
    """The run's last lines: each goal met or not, with the figure it is judged on."""
    return [
        f"VERDICT: {r['failed']} of {r['requests']:,} requests failed ({r['failed_share']:.3%}); "
        + "; ".join(f"{GOALS[k]}: {'met' if ok else 'NOT met'}" for k, ok in r["goals"].items())
    ]


def _s(v: float | None, spec: str = ".2f") -> str:
    return "never" if v is None else f"{v:{spec}} s"


def _ms(v: float) -> str:
    return "—" if not math.isfinite(v) else f"{v:.1f}"


def _recovery(fault: str, restart: str) -> str:
    """What brings the server back after this fault (``restart``: what the stack does on an exit)."""
    if fault == "stall":
        return "it resumes by itself, before any liveness check gives up on it: nothing restarts it"
    if fault == "hang":
        return f"only a liveness check that finds it hung can replace it; then {restart}"
    return restart


def _breaker_note(fault: str, r: dict[str, Any], cfg: dict[str, Any]) -> str:
    """A stall the breaker outlasted: its 'none after the breaker opened' holds trivially."""
    opened = r.get("circuit_open_s")
    if fault == "stall" and opened is not None and opened >= cfg.get("stall_s", 0.0):
        return " (it opened after the stall had ended, so this count says nothing about the stall)"
    return ""


def section(runs: dict[str, dict[str, Any]], heading: str = "##") -> list[str]:
    """Markdown for one or more chaos runs (keyed by where they ran: native, compose)."""
    lines = [f"{heading} Faults under load (`make load-chaos`)", ""]
    for where, run in runs.items():
        r, cfg = run["result"], run["settings"]
        tf = {"standin": "stand-in (serving/tfserving_standin)", "real": "real server"}.get(
            run.get("tf_implementation", "?"), run.get("tf_implementation", "?")
        )
        fault = cfg.get("fault", "kill")
        lines += [
            f"**{where}**: {cfg['rate']:,.0f} req/s open loop through `auto` for {cfg['duration_s']:.0f} s; "
            f"{r['victim']} (the routed server; TF Serving here is the {tf}) "
            + FAULT_DONE[fault].format(stall_s=cfg.get("stall_s", 0.0))
            + f" at {cfg['kill_at_s']:.0f} s; {_recovery(fault, run.get('restart', ''))}. "
            f"Machine: {run.get('machine', '?')}.",
            "",
            f"- failed: **{r['failed']} of {r['requests']:,} ({r['failed_share']:.3%})**"
            f"{' by status ' + str(r['failed_codes']) if r['failed'] else ''}; after the breaker opened "
            f"({_s(r['circuit_open_s'])} after the fault): {r['failed_after_breaker_opened']}"
            + _breaker_note(fault, r, cfg),
            f"- auto answered from the other server {_s(r['failover_s'], '.3f')} after the fault; "
            f"{r['victim']} READY again after {_s(r['ready_again_s'])}, back in rotation after "
            f"{_s(r['back_in_rotation_s'])}",
            f"- goals: < 0.5 % failed {'met' if r['goals']['failed_share'] else '**not met**'}; none after the "
            f"breaker opens {'met' if r['goals']['none_after_breaker'] else '**not met**'}",
            "",
            "| phase | from (s after the fault) | to | requests | failed | p50 ms | p99 ms | answered by |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in PHASES:
            ph = r["phases"][name]
            by = ", ".join(f"{k} {v:,}" for k, v in ph["served_by"].items()) or "—"
            frm = "start" if name == "before" else ph["from_s"]
            lines.append(
                f"| {name} ({PHASE_HELP[name]}) | {frm} | {ph['to_s'] if ph['to_s'] is not None else 'end'} | "
                f"{ph['requests']:,} | {ph['failed']} | {_ms(ph['p50_ms'])} | {_ms(ph['p99_ms'])} | {by} |"
            )
        if run.get("note"):  # a reader's note added to the run's JSON afterwards
            lines += ["", f"*Note.* {run['note']}"]
        if run.get("plot"):
            lines += ["", f"![{run['plot']}]({run['plot']})"]
        lines.append("")
    return lines


def plot(table: dict[str, np.ndarray], result: dict[str, Any], kill_s: float, out: Path) -> str:
    """Latency over the run, one colour per answering server, failures at the top; the events marked."""
    fig, ax = plt.subplots(figsize=(10, 4))
    t, ms, ok, via = table["t"], table["ms"], table["ok"], table["via"]
    for code in np.unique(via[ok]):
        sel = ok & (via == code)
        ax.scatter(t[sel], ms[sel], s=2, label=VIA[code] or "?", alpha=0.6)
    finite = ms[ok]
    top = float(np.percentile(finite, 99.9)) * 1.5 if len(finite) else 10.0
    if (~ok).any():
        ax.scatter(t[~ok], np.full(int((~ok).sum()), top), s=12, marker="x", color="red", label="failed")
    marks = {"kill": 0.0, "READY": result["ready_again_s"], "back in rotation": result["back_in_rotation_s"]}
    for label, rel in marks.items():
        if rel is not None:
            ax.axvline(kill_s + rel, linestyle="--", color="black", linewidth=0.8)
            ax.text(kill_s + rel, top * 0.95, f" {label}", fontsize=8, va="top")
    ax.set_yscale("log")
    ax.set_xlabel("intended send time (s)")
    ax.set_ylabel("latency from intended send (ms)")
    ax.set_title(f"auto under load, {result['victim']} killed")
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out.name
