"""The committed CPU capacity report renders from its results.json exactly as committed (its new
fields too: floors, the generator's work and waiting, the split, the calibration's summaries)."""

from __future__ import annotations

import shutil
from pathlib import Path

from load_tests.reports import capacity
from tests.conftest import REPO

COMMITTED = REPO / "docs" / "load-report-2cpu"


def test_the_committed_report_is_what_its_results_render(tmp_path: Path) -> None:
    # the report links the sweep and the chaos runs beside it
    chaos_runs = [p.name for p in COMMITTED.glob("chaos-*.json")]
    for name in ("results.json", "sweep.md", "sweep.png", *chaos_runs):
        shutil.copy(COMMITTED / name, tmp_path / name)
    text = capacity.write_capacity(
        tmp_path, __import__("orjson").loads((tmp_path / "results.json").read_bytes())
    ).read_text()
    assert text == (COMMITTED / "report.md").read_text()
    for needle in ("## Each server against its floor", "| torchserve | floor-torchscript |", "waiting precisely",
                   "per process** with the guard holding", "Note.**", "## Faults under load",
                   "**compose**: 490 req/s"):  # fmt: skip
        assert needle in text, needle
    for png in ("capacity.png", "latency_vs_rate.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")
