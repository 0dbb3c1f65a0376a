"""``artifacts/manifest.json``: what was trained, from what, and the checksum of every artifact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a directory as (relative path, bytes) of each file in sorted order."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        digest.update(f.read_bytes())
    return digest.hexdigest()


def load(root: Path) -> dict[str, Any]:
    f = root / MANIFEST
    return json.loads(f.read_text()) if f.exists() else {"artifacts": []}


def record(root: Path, version: int, entries: list[dict[str, Any]]) -> Path:
    """Replace this version's entries, keep every other version's."""
    manifest = load(root)
    kept = [a for a in manifest["artifacts"] if a.get("model_version") != version]
    manifest["artifacts"] = sorted(kept + entries, key=lambda a: (a["model_version"], a["name"]))
    manifest["latest_version"] = max(a["model_version"] for a in manifest["artifacts"])
    out = root / MANIFEST
    out.write_text(json.dumps(manifest, indent=2) + "\n")
    return out
