"""report.md and rollout.png for ``make load-rollout`` from its typed ``RolloutRun``: every sentence
is computed from the data; ``python -m load_tests.reports.rollout FOLDER`` renders a folder again."""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from typing import Any

import orjson

from load_tests.reports import plots
from load_tests.results import PhaseResult, RolloutRun, ServerPhase

NAMES = {"tfserving": "TF Serving", "torchserve": "TorchServe"}
MARKED = ("load requested", "switched", "old unloaded", "refused")


def _spread(values: list[float | None], spec: str = ".1f") -> str:
    """median [min-max] over the repeats ("–" when none)."""
    vs = [v for v in values if v is not None and math.isfinite(v)]
    if not vs:
        return "–"
    mid = format(statistics.median(vs), spec)
    return mid if len(vs) == 1 else f"{mid} [{min(vs):{spec}}–{max(vs):{spec}}]"


def _by_phase(run: RolloutRun) -> dict[str, list[PhaseResult]]:
    out: dict[str, list[PhaseResult]] = {}
    for p in run.phases:
        out.setdefault(p.phase, []).append(p)
    return out


def _server(results: list[PhaseResult], server: str) -> list[ServerPhase]:
    return [s for p in results for s in p.servers if s.server == server]


def headline(run: RolloutRun) -> str:
    requests = sum(s.requests for p in run.phases for s in p.servers)
    repeats = len({p.repeat for p in run.phases})
    as_expected = sum(1 for p in run.phases if p.rollout_ok == p.expect_ok)
    good = [p for p in run.phases if p.expect_ok]
    bad = [p for p in run.phases if not p.expect_ok]
    tts = {s: [x.time_to_serving_s for x in _server(good, s) if x.rolled and x.time_to_serving_s is not None]
           for s in NAMES}  # fmt: skip
    text = (
        f"**{run.failed} of {requests:,} requests failed** through {len(run.phases)} rollouts "
        f"({repeats} repeat{'s' if repeats > 1 else ''} of {len(run.phases) // max(1, repeats)} phases) at "
        f"{run.rate:,.0f} req/s through the gateway ({run.target}); {as_expected} of {len(run.phases)} rollouts did "
        f"what was expected ({len(good)} switched and rolled back, {len(bad)} bad versions refused"
        f"{'' if all(not p.rollout_ok for p in bad) else ': NOT ALL REFUSED'}). "
    )
    text += (
        'From "load requested" to serving the new version (median [min–max] over roll-outs and rollbacks): '
        + ", ".join(f"{NAMES[s]} {_spread(list(v))} s" for s, v in tts.items())
        + "."
    )
    med = {s: statistics.median(v) for s, v in tts.items() if v}
    if len(med) == 2:
        slow, fast = sorted(med, key=lambda s: -med[s])
        apart = min(tts[slow]) > max(tts[fast])
        text += (
            f" {NAMES[slow]} took {med[slow] / med[fast]:.1f}x as long as {NAMES[fast]} (median)"
            + (", longer in every roll-out" if apart else "; their ranges overlap")
            + "."
        )
    return text


def table(run: RolloutRun) -> list[str]:
    lines = [
        "| phase | server | requests | failed | p99 before (ms) | p99 during (ms) | p99 after (ms) | "
        "load requested → serving (s) | versions that answered | outside the expected |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for phase, results in _by_phase(run).items():
        for server in NAMES:
            rows = _server(results, server)
            rolled = rows[0].rolled
            versions: dict[str, int] = {}
            for r in rows:
                for v, n in r.versions.items():
                    versions[v] = versions.get(v, 0) + n
            failed = sum(r.failed for r in rows)
            why: dict[str, int] = {}
            for r in rows:
                for k, n in r.failed_by.items():
                    why[k] = why.get(k, 0) + n
            reasons = f" ({', '.join(f'{k}: {n}' for k, n in why.items())})" if why else ""
            seen = ", ".join(f"{v}: {n:,}" for v, n in sorted(versions.items()))
            cells = [
                phase if server == "tfserving" else "",
                NAMES[server] + ("" if rolled else " (neighbour)"),
                f"{sum(r.requests for r in rows):,}",
                f"**{failed}**{reasons}",
                _spread([r.p99_before_ms for r in rows], ".0f"),
                _spread([r.p99_during_ms for r in rows], ".0f"),
                _spread([r.p99_after_ms for r in rows], ".0f"),
                _spread([r.time_to_serving_s for r in rows]) if rolled else "",
                seen,
                str(sum(r.unexpected_versions for r in rows)),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def handover(run: RolloutRun) -> list[str]:
    lines = []
    for server in NAMES:
        rows = [r for p in run.phases if p.expect_ok for r in p.servers if r.server == server and r.rolled]
        last = [r.old_last_after_switch_s for r in rows]
        first = [r.new_first_after_switch_s for r in rows]
        lines.append(
            f"- {NAMES[server]}: the old version's last answer came {_spread(last, '+.2f')} s after the switch, "
            f"the new version's first {_spread(first, '+.2f')} s after it (the gateway follows a switch within "
            "0.5 s plus one status call; the old version is unloaded only after the drain)."
        )
    return lines


def plot(run: RolloutRun, path: Path) -> Path | None:
    if not run.samples:
        return None
    import matplotlib.pyplot as plt

    phases = list(run.samples)
    fig, axes = plt.subplots(len(phases), 1, figsize=(11, 2.3 * len(phases)), sharey=True)
    first = {p.phase: p for p in run.phases if p.repeat == 0}
    palette: dict[str, Any] = {}
    colours = plt.get_cmap("tab10")
    for ax, name in zip(axes if len(phases) > 1 else [axes], phases, strict=True):
        rows = run.samples[name]
        tags = sorted({str(r[3]) for r in rows})
        for tag in tags:
            pts = [r for r in rows if str(r[3]) == tag]
            ok = tag.isdigit()
            if tag not in palette:
                palette[tag] = colours(len(palette) % 10)
            ax.scatter(
                [float(r[0]) for r in pts], [max(0.1, float(r[1])) for r in pts], s=4 if ok else 18,
                marker="o" if ok else "x", color=palette[tag] if ok else "red",
                label=f"version {tag}" if ok else f"failed: {tag}",
            )  # fmt: skip
        result = first.get(name)
        if result is not None:
            steps = result.log.get("steps", [])
            for step in steps if isinstance(steps, list) else []:
                if step["event"] in MARKED and step["server"] in NAMES:
                    x = step["wall"] - result.load_origin_wall
                    ax.axvline(x, color="grey", lw=0.8, ls="--")
                    ax.text(x, 1.02, f"{NAMES[step['server']]}: {step['event']}", fontsize=6,
                            transform=ax.get_xaxis_transform(), ha="left", va="bottom")  # fmt: skip
        ax.axhline(run.slo_ms, color="black", lw=0.6)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plots.PLAIN)
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_ylabel("latency (ms)")
        ax.legend(fontsize=7, loc="upper left", markerscale=2)
    (axes[-1] if len(phases) > 1 else axes).set_xlabel(
        "seconds since the load started (every request at its intended send time; black line: the SLO)"
    )
    fig.suptitle(f"Which version answered, over time ({run.target}, {run.rate:,.0f} req/s, repeat 1)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(run: RolloutRun, out: Path) -> Path:
    png = plot(run, out / "rollout.png")
    tree = f"commit {run.commit[:12]}" + (
        " with uncommitted changes: a development run" if run.dirty else ", unchanged"
    )
    lines = [
        f"# Model rollouts under load ({run.target})",
        "",
        headline(run),
        "",
        f"Machine: {run.cores} cores, shared (load average {' '.join(run.load_avg_before)} before, "
        f"{' '.join(run.load_avg_after)} after); {tree}. TF Serving: "
        + (
            "the stand-in (serving/tfserving_standin)"
            if run.tfserving_implementation == "standin"
            else run.tfserving_implementation
        )
        + ". Figures from one run on one machine: compare the two servers within it, not with other runs.",
        "",
        f"Load: open-loop Poisson arrivals at **{run.rate:,.0f} req/s** through the gateway, one row each, over "
        "tfserving, torchserve and torchserve-onnx in turn, latency from each request's intended send time "
        f"(load_tests/generator/lean.py). {_capacity_text(run)}",
        "",
        f"Each phase: {run.before_s:g} s of load, then `python -m serving.rollout --version N --servers ...` as a "
        f"user runs it, then {run.after_s:g} s more; TorchServe's rows count both of its models. Version 2 is "
        "version 1's weights under a new number (training/copy_version.py: what is measured is the rollout), 3 "
        "answers wrongly and 4 fails to load (training/bad_version.py). p99 before = from the phase's second "
        f"{run.warmup_s:g} s (its load opens new connections) to the start of the rollout command, during = from "
        "there (the command's own start-up included) to its last step, after = the rest; median [min–max] over "
        "the repeats.",
        "",
        *table(run),
        "",
        "Hand-over at the switch (successful rollouts):",
        "",
        *handover(run),
        "",
        f"Send lag p99 (the generator's own lateness, counted in every latency): "
        f"{_spread([p.send_lag_p99_ms for p in run.phases], '.2f')} ms; its CPU "
        f"{_spread([p.generator_cpu_us_per_req for p in run.phases], '.0f')} µs a request.",
        "",
    ]
    if png is not None:
        lines += [f"![which version answered over time]({png.name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _capacity_text(run: RolloutRun) -> str:
    if not run.capacity_steps:
        return "The rate was given (--rate), not measured."
    steps = ", ".join(
        f"{s['rate']:.0f} ({s['p99_ms']:.0f} ms" + (f", {int(s['failed'])} failed)" if s["failed"] else ")")
        for s in run.capacity_steps
    )
    return (
        "That is half the capacity measured at the start: the highest rate of "
        f"{len(run.capacity_steps)} open-loop steps whose p99 stayed within {run.slo_ms:g} ms with nothing failed, "
        f"{run.capacity_rps:,.0f} req/s "
        f"(steps, req/s (p99): {steps})."
    )


def load(folder: Path) -> RolloutRun:
    data = orjson.loads((folder / "rollout.json").read_bytes())
    phases = [PhaseResult(**{**p, "servers": [ServerPhase(**s) for s in p["servers"]]}) for p in data.pop("phases")]
    return RolloutRun(**{**data, "phases": phases})


def main(argv: list[str] | None = None) -> int:
    folder = Path((argv or sys.argv[1:])[0])
    print(write_report(load(folder), folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
