"""What every report's plots share."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

PLAIN = FuncFormatter(lambda v, _: f"{v:g}")  # 0.5, 2, 10 rather than 10^0 on log axes


def save(fig: Figure, path: Path, dpi: int = 110) -> None:
    """Lay the figure out, write it and free it (pyplot keeps every open figure otherwise)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
