"""``make bench-generator``'s verdict, report.md and plot, from its rows (generator.json) only.
``python -m load_tests.reports.generator DIR`` re-renders DIR's report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from load_tests.reports.plots import PLAIN, save


def _why_failed(row: dict[str, Any]) -> str:
    return (
        f"{row['failed']} request(s) not answered correctly in the measured windows (the trivial server answers "
        "every request at once, so at this rate the machine did not keep up: the generator, the server or both "
        "ran out of CPU)"
    )


def verdict(rows: list[dict[str, Any]]) -> list[str]:
    """The command's last lines: up to which rate the generator is fine here, and why not beyond."""
    if not rows:
        return ["VERDICT: nothing was measured"]
    good = [r for r in rows if r["ok"]]
    bad = [r for r in rows if not r["ok"]]
    lines = []
    for r in bad:
        why = "; ".join(r["reasons"]) or ""
        if r["failed"]:
            why = f"{why}; {_why_failed(r)}" if why else _why_failed(r)
        lines.append(f"  {r['rate']:,.0f} req/s invalid: {why or 'p99 above the SLO'}")
    highest = max((r["rate"] for r in good), default=None)
    below = all(r["ok"] for r in rows if highest is not None and r["rate"] <= highest)
    if highest is None:
        lines.append(f"VERDICT: no rate measured here is valid: every point from {rows[0]['rate']:,.0f} req/s on "
                     "tripped the guard (above); figures at these rates would measure the generator, not a server")  # fmt: skip
    else:
        lines.append(
            f"VERDICT: the generator is fit to measure up to {highest:,.0f} req/s on this machine"
            + ("" if below else " (though some lower rate was not: above)")
            + f" ({len(good)} of {len(rows)} rates valid: its send lag moved no p99 by more than the guard allows, it "
            "and the machine had CPU to spare, nothing failed)"
        )
    return lines


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, (lag, cpu) = plt.subplots(1, 2, figsize=(10, 3.8))
    rates = [r["rate"] for r in rows]
    for key, label in (("send_lag_p50_ms", "send lag p50"), ("send_lag_p99_ms", "send lag p99"),
                       ("lag_impact_ms", "its effect on p99")):  # fmt: skip
        lag.plot(rates, [r[key] if r[key] is not None else float("nan") for r in rows], marker="o", label=label)
    lag.set_ylabel("ms")
    share = [100 * r["generator_cpu_share"] if r["generator_cpu_share"] is not None else float("nan") for r in rows]
    idle = [100 * r["machine_idle"] if r["machine_idle"] is not None else float("nan") for r in rows]
    cpu.plot(rates, share, marker="o", label="generator, % of a core (waits included)")
    cpu.plot(rates, idle, marker="s", label="machine idle, %")
    cpu.set_ylabel("%")
    for ax in (lag, cpu):
        bad = [r["rate"] for r in rows if not r["ok"]]
        for x in bad:
            ax.axvline(x, color="red", alpha=0.15, linewidth=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(PLAIN)
        ax.set_xticks(rates)
        ax.set_xlabel("offered rate, req/s (red: invalid)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, path)
    return path


def write(folder: Path) -> Path:
    data = orjson.loads((folder / "generator.json").read_bytes())
    rows = data["rates"]
    png = plot(rows, folder / "generator.png")
    lines = [
        "# The load generator against a server that answers at once (`make bench-generator`)",
        "",
        *(f"**{v}**" if v.startswith("VERDICT") else f"- {v.strip()}" for v in data.get("verdict", verdict(rows))),
        "",
        f"Sender {data['sender']} (cooperative spin {data['spin_us']:.0f} µs), scheduling {data['priority']}; load "
        f"average before {' '.join(data['load_avg_before'])} (a shared machine).",
        "",
        "| rate (req/s) | processes | send lag p50 / p99 (ms) | moved p99 by (ms) | generator CPU (% of a core) | "
        "µs per request | machine idle | failed | valid |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v: float | None, spec: str = ".3f", scale: float = 1.0) -> str:
        return "–" if v is None else format(v * scale, spec)

    for r in rows:
        lines.append(
            f"| {r['rate']:,.0f} | {r['processes']} | {f(r['send_lag_p50_ms'])} / {f(r['send_lag_p99_ms'])} | "
            f"{f(r['lag_impact_ms'])} | {f(r['generator_cpu_share'], '.0f', 100)} | "
            f"{f(r['generator_cpu_us_per_req'], '.0f')} | {f(r['machine_idle'], '.0%')} | {r['failed']} | "
            + ("yes" if r["ok"] else "no: " + "; ".join(r["reasons"] or ["failed requests"]))
            + " |"
        )
    lines += ["", f"![send lag and CPU per rate]({png.name})", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    print(write(Path((argv or sys.argv[1:])[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
