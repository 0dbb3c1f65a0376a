"""What every measuring command ends with (the benchmarks and the load runs alike): a folder with
report.md (its verdict first), a plot and the figures as JSON, and the verdict printed as the
command's last lines. A verdict says whether the figures can be trusted (valid or not, and why)
before what they show."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class BenchReport:
    title: str
    verdict: list[str]  # "VERDICT: ..." lines, and indented detail lines between them
    body: list[str] = field(default_factory=list)  # markdown after the verdict
    figures: dict[str, Any] = field(default_factory=dict)  # written as figures.json


def write(
    folder: Path, report: BenchReport, plot: Callable[[Path], object] | None = None, png: str = "plot.png"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {report.title}",
        "",
        *(f"**{v}**" if v.startswith("VERDICT") else f"- {v.strip()}" for v in report.verdict),
        "",
        *report.body,
    ]
    if plot is not None:
        plot(folder / png)
        lines += ["", f"![{report.title}]({png})"]
    (folder / "figures.json").write_bytes(
        orjson.dumps(
            {**report.figures, "verdict": report.verdict}, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
        )
    )
    path = folder / "report.md"
    path.write_text("\n".join([*lines, ""]))
    return path


def finish(
    folder: Path, report: BenchReport, plot: Callable[[Path], object] | None = None, png: str = "plot.png"
) -> Path:
    """Write the folder, then print where it is and the verdict, last."""
    path = write(folder, report, plot, png)
    print(f"\nreport: {path}")
    print("\n".join(report.verdict), flush=True)
    return path
