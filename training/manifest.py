"""``artifacts/manifest.json``: every model version, its artifacts (sha256 each), how it was
trained, its held-out accuracy, and the held-out check a rollout runs against a server.

Schema 2 (``"schema": 2``)::

    {
      "schema": 2,
      "latest_version": 2,        # the newest version whose status is "ok": what serves by default
      "held_out_check": {         # K fixed held-out MNIST test rows, stored once for every version
        "path": "held_out_check.npy", "sha256": "...", "rows": 30, "labels": [0, 0, 0, 1, ...],
        "source": "..."
      },
      "versions": [{
        "version": 1, "status": "ok" | "bad",
        "bad": null | {"kind": "wrong-answers" | "fails-to-load", "reason": "...", "from_version": 1},
        "weights": {"keras": "keras", "pytorch": "pytorch"},   # which training made each framework's
                                                               # weights ("pytorch" for both: same weights)
        "created": "...", "python": "3.11.9", "data": {...}, "seed": 42, "hyperparameters": {...},
        "augmentation": {...}, "input": {...}, "output": {...},
        "frameworks": {"keras": {"library_versions": {...}, "history": {...} | null,
                                 "accuracy": {"mnist_test": 0.968, "printed": ..., ...},
                                 "uncertainty": {...}},     # training/uncertainty.py
                       "pytorch": {...}},
        "held_out_check": {"tolerance": 0.001,
                           "expected": {"tfserving": {"labels": [...], "probabilities": [[...], ...]},
                                        "torchserve": {...}, "torchserve-onnx": {...}}}
      }],
      "artifacts": [              # one entry per file or folder, flat (containers/images.py hashes them)
        {"name": "savedmodel", "model_version": 1, "framework": "keras", "format": "tf_saved_model",
         "backend": "tfserving", "model_name": "mnist", "path": "tfserving/mnist/1", "sha256": "..."},
        ... "torchscript", "onnx" (artifacts/torchserve/N/), "torchscript_mar", "onnx_mar"
        (artifacts/model-store/mnist-vN.mar and mnist_onnx-vN.mar, modelVersion N in their MANIFEST.json)
      ]
    }

Missing from the sketch: "agreement" per version (the served models' largest probability gap on the
test digits). The writer is ``held_out_rows`` + ``record_version`` (``update_*`` for later
additions); readers use the typed ``Manifest.load`` (stdlib and
NumPy only, no training framework: the rollout imports it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
SCHEMA = 2
CHECK_FILE = "held_out_check.npy"
OK, BAD = "ok", "bad"
# The kinds of deliberately bad version training/bad_version.py writes.
BAD_KINDS = ("wrong-answers", "fails-to-load")
# Served probabilities may differ from the exported artifact's by this much and still pass. CPU
# float32 paths agree within 1e-6 here (tests/serving: served vs in-process); the margin leaves room
# for other math libraries and GPUs, and is still far below what a wrong model changes (> 0.1).
CHECK_TOLERANCE = 1e-3


class ManifestError(ValueError):
    """The manifest is missing, from an older schema, or does not hold what was asked; says the fix."""


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a directory as (relative path, bytes) of each file in sorted order."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        digest.update(f.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- the typed reader


@dataclass(frozen=True)
class Artifact:
    name: str  # savedmodel, torchscript, onnx, torchscript_mar, onnx_mar
    version: int
    framework: str  # keras or pytorch: whose model format (see Version.weights for whose weights)
    format: str
    backend: str  # the gateway's backend name that serves it: tfserving, torchserve, torchserve-onnx
    model_name: str  # the name the server registers it under
    path: str  # relative to the artifacts folder
    sha256: str

    def file(self, root: Path) -> Path:
        return root / self.path


@dataclass(frozen=True)
class Expected:
    """What one backend must answer for the held-out check's rows."""

    labels: tuple[int, ...]
    probabilities: np.ndarray  # float32 [K, 10]


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    max_abs_diff: float
    wrong_labels: tuple[int, ...]  # row indices whose label differs where the expected one is clear
    message: str


@dataclass(frozen=True)
class BadMark:
    kind: str  # one of BAD_KINDS
    reason: str
    from_version: int | None


@dataclass(frozen=True)
class Version:
    version: int
    status: str  # "ok" or "bad"
    bad: BadMark | None
    weights: Mapping[str, str]  # framework -> the framework whose training produced its weights
    created: str
    accuracy: Mapping[str, Mapping[str, float]]  # framework -> evaluation set -> accuracy
    uncertainty: Mapping[str, Mapping[str, Any]]  # framework -> training/uncertainty.py's rates
    tolerance: float
    expected: Mapping[str, Expected]  # backend -> expected answers on the held-out rows
    artifacts: tuple[Artifact, ...]
    raw: Mapping[str, Any] = field(repr=False)  # the whole entry, for what the typed fields omit

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def same_weights(self) -> bool:
        return len(set(self.weights.values())) == 1

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise ManifestError(
            f"version {self.version} has no {name!r} artifact; it has {[a.name for a in self.artifacts]}"
        )

    def verify(self, backend: str, probabilities: Sequence[Sequence[float]] | np.ndarray) -> CheckResult:
        """Whether ``probabilities`` (a server's answers to the held-out rows, in order) match what
        this version must answer on ``backend``: every probability within ``tolerance``, and every
        label the same wherever the expected top two are further apart than twice the tolerance
        (a near-tie may flip within the tolerance)."""
        if backend not in self.expected:
            raise ManifestError(
                f"version {self.version} has no held-out check for {backend!r}: {sorted(self.expected)}"
            )
        want = self.expected[backend]
        got = np.asarray(probabilities, dtype=np.float64)
        if got.shape != want.probabilities.shape:
            return CheckResult(
                False, float("inf"), (), f"answer shape {got.shape}, expected {want.probabilities.shape}"
            )
        diff = float(np.abs(got - want.probabilities).max()) if got.size else 0.0
        top2 = np.sort(want.probabilities, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * self.tolerance
        wrong = tuple(int(i) for i in np.nonzero(clear & (got.argmax(1) != np.asarray(want.labels)))[0])
        passed = diff <= self.tolerance and not wrong
        message = (
            f"version {self.version} on {backend}: max |p - expected| = {diff:.2g} "
            f"(tolerance {self.tolerance:g}), {len(wrong)} of {len(got)} labels differ"
        )
        return CheckResult(passed, diff, wrong, message)


@dataclass(frozen=True)
class Manifest:
    root: Path
    latest_version: int | None  # the newest good version
    versions: tuple[Version, ...]
    check_path: str
    check_sha256: str
    check_labels: tuple[int, ...]

    @classmethod
    def load(cls, root: Path) -> Manifest:
        data = load(root)
        if not data["artifacts"]:
            raise ManifestError(f"{root / MANIFEST} is missing or empty: run `make train`")
        if data.get("schema") != SCHEMA:
            raise ManifestError(
                f"{root / MANIFEST} is schema {data.get('schema', 1)}, this code reads schema {SCHEMA}: "
                "retrain (`make train`, and `make train VERSION=N` for each other version)"
            )
        artifacts = [_artifact(a) for a in data["artifacts"]]
        versions = tuple(
            _version(v, tuple(a for a in artifacts if a.version == v["version"])) for v in data["versions"]
        )
        check = data["held_out_check"]
        return cls(root, data.get("latest_version"), versions, check["path"], check["sha256"], tuple(check["labels"]))

    def version(self, n: int) -> Version:
        for v in self.versions:
            if v.version == n:
                return v
        raise ManifestError(
            f"version {n} is not in {self.root / MANIFEST} (it lists {[v.version for v in self.versions]}): "
            f"`make train VERSION={n}` writes it"
        )

    @property
    def good_versions(self) -> tuple[int, ...]:
        return tuple(v.version for v in self.versions if v.ok)

    def check_rows(self) -> np.ndarray:
        """The held-out rows (float32 [K, 784]), after checking their sha256."""
        path = self.root / self.check_path
        if not path.is_file() or sha256_path(path) != self.check_sha256:
            raise ManifestError(f"{path} is missing or not the file the manifest names: retrain with `make train`")
        return np.load(path).astype(np.float32)

    def changed_files(self, n: int) -> list[str]:
        """The artifacts of version ``n`` that are missing or differ from their recorded sha256."""
        return [
            a.path
            for a in self.version(n).artifacts
            if not a.file(self.root).exists() or sha256_path(a.file(self.root)) != a.sha256
        ]


def _artifact(a: Mapping[str, Any]) -> Artifact:
    return Artifact(
        a["name"],
        int(a["model_version"]),
        a["framework"],
        a["format"],
        a["backend"],
        a["model_name"],
        a["path"],
        a["sha256"],
    )


def _version(v: Mapping[str, Any], artifacts: tuple[Artifact, ...]) -> Version:
    bad = v.get("bad")
    check = v["held_out_check"]
    return Version(
        version=int(v["version"]),
        status=v["status"],
        bad=BadMark(bad["kind"], bad["reason"], bad.get("from_version")) if bad else None,
        weights=dict(v["weights"]),
        created=v["created"],
        accuracy={f: dict(d["accuracy"]) for f, d in v["frameworks"].items()},
        uncertainty={f: dict(d.get("uncertainty") or {}) for f, d in v["frameworks"].items()},
        tolerance=float(check["tolerance"]),
        expected={
            b: Expected(tuple(e["labels"]), np.asarray(e["probabilities"], dtype=np.float64))
            for b, e in check["expected"].items()
        },
        artifacts=artifacts,
        raw=v,
    )


# ---------------------------------------------------------------- the writer


def load(root: Path) -> dict[str, Any]:
    """The manifest as JSON (an empty one when there is none yet)."""
    f = root / MANIFEST
    return json.loads(f.read_text()) if f.exists() else {"schema": SCHEMA, "artifacts": [], "versions": []}


def expected(probabilities: np.ndarray) -> dict[str, Any]:
    """One backend's expected answers to the held-out rows, as the manifest stores them."""
    p = np.asarray(probabilities, dtype=np.float32)
    return {"labels": [int(x) for x in p.argmax(1)], "probabilities": [[round(float(x), 8) for x in row] for row in p]}


def writable(root: Path, version: int) -> None:
    """Raise unless version ``version`` can be recorded: a schema-1 manifest is replaced only when it
    holds no other version (their held-out checks would be missing)."""
    data = load(root)
    if data.get("schema") != SCHEMA:
        older = sorted({a.get("model_version") for a in data["artifacts"]} - {version})
        if older:
            raise ManifestError(
                f"{root / MANIFEST} is schema 1 and lists versions {older} without held-out checks: retrain them "
                f"(`make train VERSION=N`) or move {root} aside"
            )


def held_out_rows(
    root: Path, candidates: np.ndarray, labels: np.ndarray, source: str, per_class: int = 3
) -> tuple[np.ndarray, dict[str, Any]]:
    """The held-out check's rows and their manifest record. Every version is checked on the same
    rows: the stored ones when the manifest has them, else the first ``per_class`` candidates of
    each class, written to ``CHECK_FILE``."""
    data = load(root)
    path = root / CHECK_FILE
    stored = data.get("held_out_check") if data.get("schema") == SCHEMA else None
    if stored:
        if not path.is_file() or sha256_path(path) != stored["sha256"]:
            raise ManifestError(
                f"{path} is missing or changed, and the manifest's versions were checked on it: restore it, "
                f"or move {root} aside and retrain every version"
            )
        return np.load(path).astype(np.float32), stored
    picks = np.concatenate([np.nonzero(labels == c)[0][:per_class] for c in range(int(labels.max()) + 1)])
    rows = candidates[picks].astype(np.float32)
    root.mkdir(parents=True, exist_ok=True)
    np.save(path, rows)
    record = {
        "path": CHECK_FILE,
        "sha256": sha256_path(path),
        "rows": len(rows),
        "labels": [int(y) for y in labels[picks]],
        "source": f"{source}: the first {per_class} held-out test digits of each class",
    }
    return rows, record


def record_version(
    root: Path, version: Mapping[str, Any], artifacts: Iterable[Mapping[str, Any]], check: Mapping[str, Any]
) -> Path:
    """Replace this version's record and artifacts, keep every other version's. ``check``: the
    held-out rows' record (``held_out_rows``)."""
    n = int(version["version"])
    writable(root, n)
    data = load(root)
    if data.get("schema") != SCHEMA:  # a schema-1 manifest of this version alone: replaced
        data = {"schema": SCHEMA, "artifacts": [], "versions": []}
    data["held_out_check"] = dict(check)
    entries = [dict(a, model_version=n) for a in artifacts]
    data["artifacts"] = sorted(
        [a for a in data["artifacts"] if a["model_version"] != n] + entries,
        key=lambda a: (a["model_version"], a["name"]),
    )
    data["versions"] = sorted(
        [v for v in data["versions"] if v["version"] != n] + [dict(version)], key=lambda v: v["version"]
    )
    good = [v["version"] for v in data["versions"] if v["status"] == OK]
    data["latest_version"] = max(good) if good else None
    return _write(root, data)


def update_version(root: Path, n: int, **fields: Any) -> Path:
    """Set top-level fields of version ``n``'s record (nested ``frameworks.<f>.<key>`` as a dict merge)."""
    data = load(root)
    (entry,) = [v for v in data["versions"] if v["version"] == n]
    for key, value in fields.items():
        if key == "frameworks":
            for f, extra in value.items():
                entry["frameworks"][f].update(extra)
        else:
            entry[key] = value
    return _write(root, data)


def update_artifacts(root: Path, n: int, artifacts: Iterable[Mapping[str, Any]]) -> Path:
    """Replace (by name) some of version ``n``'s artifact entries."""
    data = load(root)
    new = {a["name"]: dict(a, model_version=n) for a in artifacts}
    kept = [a for a in data["artifacts"] if not (a["model_version"] == n and a["name"] in new)]
    data["artifacts"] = sorted([*kept, *new.values()], key=lambda a: (a["model_version"], a["name"]))
    return _write(root, data)


def _write(root: Path, data: Mapping[str, Any]) -> Path:
    ordered = {"schema": SCHEMA, **{k: v for k, v in data.items() if k != "schema"}}
    out = root / MANIFEST
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(ordered, indent=2) + "\n")
    tmp.replace(out)  # readers never see half a manifest
    return out
