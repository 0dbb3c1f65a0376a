"""``python -m gateway.app``: serve the gateway with uvicorn on GATEWAY_HOST:GATEWAY_PORT.

``GATEWAY_WORKERS`` > 1 runs that many uvicorn worker processes on one port (more cores of one
machine). Their Prometheus metrics are then kept in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary
folder unless set) and ``/metrics`` on any worker answers the sum over all workers.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

import uvicorn

from gateway.app.core.config import get_settings
from gateway.app.core.metrics import MULTIPROC_ENV
from gateway.app.main import create_app

SERVER = {"log_level": "warning", "access_log": False, "http": "httptools", "loop": "uvloop"}


def _exit_cleanly(signum: int, _frame: object) -> None:
    sys.exit(0)


def main() -> None:
    settings = get_settings()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal so the default action
    # would end the process with 143; with this handler in place it exits 0 (`docker stop`, k8s).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if settings.workers == 1:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, **SERVER)  # type: ignore[arg-type]
        return
    # Set before any worker imports prometheus_client: the workers inherit it.
    given = os.environ.get(MULTIPROC_ENV)
    folder = given or tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    for stale in os.listdir(folder):  # samples of an earlier run would be summed in
        os.unlink(os.path.join(folder, stale))
    try:
        uvicorn.run(
            "gateway.app.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            **SERVER,  # type: ignore[arg-type]
        )
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
