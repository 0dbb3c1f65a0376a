"""Container entrypoint: write the effective config for the baked archives, run TorchServe, and
forward SIGTERM/SIGINT to its Java frontend.

The config can be mounted (a Kubernetes ConfigMap at /config/config.properties); the version
loaded at start is the one the image's ``VERSION`` file names (its archives are ``mnist-vN.mar``,
``mnist_onnx-vN.mar``: serving/torchserve/config.py's ``for_version``), so the two can never disagree.

Why a parent process: ``torchserve --foreground`` is a Python CLI that starts Java and waits, with
no signal handler. As PID 1 it ignores SIGTERM (the kernel drops unhandled signals for PID 1), so
``docker stop`` would wait out its grace period and SIGKILL everything with requests in flight.
Here SIGTERM goes to Java, whose shutdown hook stops the servers and workers; we wait for it and
exit 0. A second signal, or Java outliving the grace period, ends it with SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

import psutil

from mnist_serving.ports import TORCHSERVE_MANAGEMENT, local_url
from serving.torchserve.config import CONFIG, torchserve_argv, write_config
from serving.torchserve.ready import INFERENCE_URL, WARMED_MARKER_ENV, warm_when_ready

STOP_GRACE_S = float(os.environ.get("TS_STOP_GRACE_S", "20"))  # below Kubernetes' terminationGracePeriodSeconds


def _frontend(cli: subprocess.Popen[bytes]) -> psutil.Process | None:
    """TorchServe's Java frontend: the CLI's child running org.pytorch.serve.ModelServer."""
    try:
        for child in psutil.Process(cli.pid).children(recursive=True):
            if any("ModelServer" in part for part in child.cmdline()):
                return child
    except psutil.Error:
        pass
    return None


def run(argv: list[str]) -> int:
    cli = subprocess.Popen(argv)
    marker = os.environ.get(WARMED_MARKER_ENV)
    if marker:  # readiness (python -m serving.torchserve.ready) waits for this file: workers READY and warm
        Path(marker).unlink(missing_ok=True)
        threading.Thread(
            target=warm_when_ready, args=(local_url(TORCHSERVE_MANAGEMENT), INFERENCE_URL, Path(marker)), daemon=True
        ).start()
    stop_asked: list[float] = []  # when the first SIGTERM/SIGINT came

    def forward(signum: int, _frame: FrameType | None) -> None:
        if stop_asked:  # asked twice: do not wait any longer
            _kill_all(cli)
            return
        stop_asked.append(time.monotonic())
        target = _frontend(cli)
        if target is not None:
            target.send_signal(signal.SIGTERM)
        else:  # Java not started yet: stop the CLI itself
            cli.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            code = cli.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if stop_asked and time.monotonic() - stop_asked[0] > STOP_GRACE_S:
                _kill_all(cli)
    if stop_asked:
        _reap_leftovers()
        return 0  # stopped on request: a clean exit, whatever the JVM's own exit code
    return code


def _kill_all(cli: subprocess.Popen[bytes]) -> None:
    try:
        procs = [psutil.Process(cli.pid), *psutil.Process(cli.pid).children(recursive=True)]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()


def _reap_leftovers() -> None:
    """Java's shutdown hook stops its Python workers; give any straggler a moment, then make sure."""
    _, alive = psutil.wait_procs(psutil.Process().children(recursive=True), timeout=3)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


IMAGE_STORE = Path("/home/model-server/model-store")  # the image's archives (mnist-vN.mar) and VERSION


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", type=Path, default=Path(os.environ.get("TS_SOURCE_CONFIG", CONFIG)))
    p.add_argument("--model-store", type=Path, default=IMAGE_STORE)
    p.add_argument(
        "--version-file",
        type=Path,
        default=None,
        help="the file naming the version to load at start (default: VERSION in the model store). Compose "
        "points the store at the mounted artifacts/model-store, where `make rollout` finds every version, "
        "and keeps loading the image's version at start",
    )
    args = p.parse_args(argv)
    version = int((args.version_file or args.model_store / "VERSION").read_text())
    out = Path(tempfile.gettempdir()) / "config.properties"  # /tmp: the root filesystem may be read-only
    write_config(out, args.model_store, version, source=args.config)
    sys.exit(run(torchserve_argv(out, args.model_store)))


if __name__ == "__main__":
    main()
