"""The in-cluster load test (k8s/load-test), started afresh on every run and its report collected.

    python -m load_tests.runs.k8s run [--no-wait] [--out reports/k8s]    (make k8s-load)
    python -m load_tests.runs.k8s fetch RUN [--out reports/k8s]

`kubectl apply` of the same Jobs a second time would say "unchanged" (or fail on a Job's immutable
template) while the first run's Jobs live out their TTL. So each run gets its own id: the Jobs and the
master's Service are created under `<name>-<run>` and labelled with it, the workers look for their
own run's master, and the master writes under /reports/<run>/ on the shared PVC. The PVC and the
NetworkPolicy are shared by all runs and applied as usual. The report is fetched by a short-lived
pod that satisfies the namespace's restricted Pod Security (non-root, no privilege escalation, all
capabilities dropped, RuntimeDefault seccomp).
"""

from __future__ import annotations

import argparse
import copy
import io
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

from mnist_serving.spec import K8S_NAMESPACE

KUSTOMIZATION = Path(__file__).resolve().parents[2] / "k8s" / "load-test"
RUN_LABEL = "mnist-serving/load-run"
SHARED_KINDS = frozenset({"PersistentVolumeClaim", "NetworkPolicy"})  # one per namespace, every run
MASTER = "locust-master"
REPORTS_CLAIM = "load-reports"
WAIT_S = 1200  # the master Job's activeDeadlineSeconds (900) plus image pulls and scheduling

Doc = dict[str, Any]


def new_run_id() -> str:
    """UTC time to the second: sortable, unique per user, a valid DNS label suffix."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def plan(docs: list[Doc], run: str) -> tuple[list[Doc], list[Doc]]:
    """Split the rendered load test into (apply: shared objects, create: this run's objects)."""
    shared, fresh = [], []
    for original in docs:
        if original["kind"] in SHARED_KINDS:
            shared.append(original)
            continue
        doc = copy.deepcopy(original)
        meta = doc["metadata"]
        meta["name"] = f"{meta['name']}-{run}"
        meta.setdefault("labels", {})[RUN_LABEL] = run
        if doc["kind"] == "Service":
            doc["spec"]["selector"][RUN_LABEL] = run  # only this run's master
        elif doc["kind"] == "Job":
            template = doc["spec"]["template"]
            template["metadata"].setdefault("labels", {})[RUN_LABEL] = run
            for container in template["spec"]["containers"]:
                for env in container.get("env", []):
                    if env["name"] == "LOAD_RUN":
                        env["value"] = run
                args = container.get("args", [])
                for i, arg in enumerate(args[:-1]):
                    if arg == "--master-host" and args[i + 1] == MASTER:
                        args[i + 1] = f"{MASTER}-{run}"
        fresh.append(doc)
    return shared, fresh


def fetch_pod(run: str, image: str) -> Doc:
    """A pod that mounts the reports PVC and waits to be read; restricted Pod Security."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"load-report-fetch-{run}",
            "labels": {"app.kubernetes.io/name": "load-report-fetch", RUN_LABEL: run},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "activeDeadlineSeconds": 600,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "fetch",
                    "image": image,
                    "command": ["sleep", "600"],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "128Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "reports", "mountPath": "/reports", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "reports", "persistentVolumeClaim": {"claimName": REPORTS_CLAIM, "readOnly": True}}],
        },
    }


def _kubectl(*args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["kubectl", "-n", K8S_NAMESPACE, *args], input=stdin, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _render() -> list[Doc]:
    kubectl = Path(sys.executable).parent / "kubectl"
    out = subprocess.run(
        [str(kubectl if kubectl.exists() else "kubectl"), "kustomize", str(KUSTOMIZATION)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _image_of(docs: list[Doc]) -> str:
    job = next(d for d in docs if d["kind"] == "Job")
    return str(job["spec"]["template"]["spec"]["containers"][0]["image"])


def fetch(run: str, image: str, out: Path) -> Path:
    pod = fetch_pod(run, image)
    name = pod["metadata"]["name"]
    _kubectl("create", "-f", "-", stdin=yaml.safe_dump(pod).encode())
    try:
        _kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=300s")
        data = _kubectl("exec", name, "--", "tar", "c", "-C", "/reports", run)
    finally:
        _kubectl("delete", "pod", name, "--wait=false", "--ignore-not-found")
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(out, filter="data")
    return out / run


def run(wait: bool, out: Path) -> str:
    docs = _render()
    run_id = new_run_id()
    shared, fresh = plan(docs, run_id)
    _kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(shared).encode())
    _kubectl("create", "-f", "-", stdin=yaml.safe_dump_all(fresh).encode())
    print(f"load run {run_id}: jobs {MASTER}-{run_id} and locust-worker-{run_id} created", flush=True)
    if not wait:
        print(f"fetch its report later: python -m load_tests.runs.k8s fetch {run_id}")
        return run_id
    _kubectl("wait", "--for=condition=complete", f"job/{MASTER}-{run_id}", f"--timeout={WAIT_S}s")
    where = fetch(run_id, _image_of(docs), out)
    print(f"report: {where}")
    return run_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="start a fresh run (and by default wait for it and fetch its report)")
    r.add_argument("--no-wait", action="store_true")
    f = sub.add_parser("fetch", help="fetch the report of a finished run")
    f.add_argument("run_id")
    for s in (r, f):
        s.add_argument("--out", type=Path, default=Path("reports/k8s"))
    args = p.parse_args(argv)
    if args.cmd == "run":
        run(not args.no_wait, args.out)
    else:
        print(f"report: {fetch(args.run_id, _image_of(_render()), args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
