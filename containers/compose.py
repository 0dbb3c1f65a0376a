"""``docker compose`` (the plugin) where the engine has it, else a standalone ``docker-compose``
(Debian's docker.io ships no plugin; the dev requirements bring the standalone binary)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = "docker-compose.yml"
STANDIN = "docker-compose.standin.yml"
PROJECT = "mnist-serving"


@cache
def command() -> tuple[str, ...]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ("docker", "compose")
    standalone = shutil.which("docker-compose") or shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    if standalone is None:
        raise RuntimeError("neither `docker compose` nor `docker-compose` is available")
    return (standalone,)


def compose(
    *args: str, files: tuple[str, ...] = (BASE, STANDIN), env: dict[str, str] | None = None, project: str = PROJECT
) -> subprocess.CompletedProcess[str]:
    """Run compose in the repository with these files; raises with its output when it fails."""
    cmd = [*command(), "-p", project]
    for f in files:
        cmd += ["-f", f]
    proc = subprocess.run(
        [*cmd, *args], cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd + list(args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
