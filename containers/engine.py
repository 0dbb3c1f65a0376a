"""``python -m containers.engine start|stop``: a Docker engine for the container test.

``start`` uses a running engine as it is. Without one it installs Debian's ``docker.io`` (and
``mmdebstrap``, for the offline base image) with apt when they are missing, starts ``dockerd`` in
the background itself (no systemd) and waits for it. ``stop`` stops the engine only if ``start``
started it, so a developer's own engine is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STATE = Path(tempfile.gettempdir()) / "mnist-serving-dockerd.json"  # the dockerd we started, if any
LOG = Path(tempfile.gettempdir()) / "mnist-serving-dockerd.log"
PACKAGES = {"dockerd": "docker.io", "mmdebstrap": "mmdebstrap"}
READY_TIMEOUT_S = 90.0


def running() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _apt_install(packages: list[str]) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"engine: installing {' '.join(packages)} with apt", flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], check=True, env=env)


def start() -> bool:
    """Make sure an engine answers; True when this call started one."""
    missing = [
        pkg for tool, pkg in PACKAGES.items() if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if shutil.which("docker") is None and "docker.io" not in missing:
        missing.append("docker.io")
    if running():
        if "mmdebstrap" in missing:
            _apt_install(["mmdebstrap"])
        print("engine: using the running Docker engine", flush=True)
        return False
    if missing:
        _apt_install(missing)
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log = LOG.open("ab")
    proc = subprocess.Popen([*sudo, dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    STATE.write_text(json.dumps({"pid": proc.pid}))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not running():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"engine: dockerd did not come up; see {LOG}")
        time.sleep(0.5)
    print(f"engine: started dockerd (pid {proc.pid}, log {LOG})", flush=True)
    return True


def stop() -> None:
    """Stop the engine if ``start`` started it; leave any other alone."""
    if not STATE.exists():
        return
    pid = json.loads(STATE.read_text())["pid"]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
    STATE.unlink(missing_ok=True)
    print("engine: stopped the dockerd it had started", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args == ["start"]:
        start()
    elif args == ["stop"]:
        stop()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
