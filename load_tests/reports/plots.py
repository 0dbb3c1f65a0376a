"""What every report's plots share."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI
from matplotlib.ticker import FuncFormatter

PLAIN = FuncFormatter(lambda v, _: f"{v:g}")  # 0.5, 2, 10 rather than 10^0 on log axes
