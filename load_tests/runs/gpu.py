"""``python -m load_tests.runs.gpu`` (``make gpu-report``): the whole GPU measurement in one go, on a
machine with an NVIDIA GPU, into one report folder (``reports/gpu-<time>/``):

1. the in-process model time on the GPU and on one CPU core at batch 1, 32 and 256 (``inproc.json``);
2. TorchServe alone (``make serve SERVERS=torchserve``: no TensorFlow needed), and what it serves on
   each model equal to the in-process CPU answer for 64 real digits, with the device it ran on
   (``gpu_check.json``, from the handler's ``X-Model-Device``);
3. the capacity run of TorchServe's two models beside their floors (the block runner,
   runs/capacity.py: QPS@SLO with intervals, the ratios to the floors; the TorchScript floor on the
   GPU), with GPU use sampled (``capacity/`` with its typed results.json, ``capacity.log``);
4. ``report.md`` (load_tests/reports/gpu.py), naming the GPU, driver, CUDA and what ran, its
   findings computed from those files.

Sized to finish in about 10 minutes. Without CUDA it says so and stops before measuring anything.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from load_tests.measure.machine import source
from load_tests.reports import gpu as gpu_report
from load_tests.servers.floor import artifact
from mnist_serving.ports import local_url
from mnist_serving.spec import INPUT_DIM, ONNX_MODEL_NAME, TORCH_MODEL_NAME

REPO = Path(__file__).resolve().parents[2]
BATCHES = (1, 32, 256)
INPROC_CALLS, INPROC_SKIP = 1500, 300  # per (runtime, device, batch): median of the calls after the first SKIP
CHECK_DIGITS = 64
# The capacity run, sized for ~6 minutes: TorchServe's two models and their floors, in blocks until
# their intervals are within ±10 % or the budget ends; 5 ms is a fair SLO on a GPU.
CAPACITY_ARGS = ("--targets", "torchserve,torchserve-onnx", "--budget-min", "6", "--slo-ms", "5",
                 "--fixed-rate", "500", "--start-rate", "500")  # fmt: skip
EXIT_NO_GPU = 3


def cuda_or_reason() -> str | None:
    """None when CUDA can be used, else why not (in words)."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False"
            f"{'; this is a CPU build' if torch.version.cuda is None else ''})"
        )
    return None


def digits(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    with np.load(REPO / "load_tests" / "data" / "mnist_test_sample.npz") as z:
        x, y = z["x"].astype(np.float32) / 255.0, z["y"].astype(np.int64)
    return (x[:n], y[:n]) if n else (x, y)


def inproc(artifacts: Path) -> dict[str, float]:
    """Median µs per call of each runtime on each device (GPU figures include the copies in and out)."""
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    x, _ = digits()
    out: dict[str, float] = {}

    def median_us(call: Any, rows: np.ndarray) -> float:
        times = []
        for _ in range(INPROC_CALLS):
            t = time.perf_counter()
            call(rows)
            times.append(time.perf_counter() - t)
        return round(float(np.median(times[INPROC_SKIP:])) * 1e6, 1)

    for device in ("cuda:0", "cpu"):
        module = torch.jit.load(str(artifact(artifacts, "torchscript")), map_location=device).eval()

        def run(rows: np.ndarray, module: Any = module, device: str = device) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(rows).to(device)).cpu().numpy()

        for b in BATCHES:
            out[f"torchscript {device} b{b}"] = median_us(run, np.resize(x, (b, INPUT_DIM)))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    for provider in providers:
        session = ort.InferenceSession(str(artifact(artifacts, "onnx")), opts, providers=[provider])
        if session.get_providers()[0] != provider:
            continue  # the provider is listed but cannot load (a CUDA/cuDNN mismatch): say nothing false
        name = session.get_inputs()[0].name
        device = "cuda:0" if provider.startswith("CUDA") else "cpu"
        for b in BATCHES:
            out[f"onnx {device} b{b}"] = median_us(lambda r, s=session, n=name: s.run(None, {n: r}),
                                                   np.resize(x, (b, INPUT_DIM)))  # fmt: skip
    return out


def served_equals_cpu(artifacts: Path, inference_port: int) -> dict[str, Any]:
    """Each TorchServe model's answer to real digits against the same artifact in-process on the CPU."""
    import onnxruntime as ort
    import torch

    x, y = digits(CHECK_DIGITS)
    with torch.inference_mode():
        cpu_ts = torch.jit.load(str(artifact(artifacts, "torchscript")), map_location="cpu")(torch.from_numpy(x))
    session = ort.InferenceSession(str(artifact(artifacts, "onnx")), providers=["CPUExecutionProvider"])
    expected = {
        TORCH_MODEL_NAME: cpu_ts.numpy(),
        ONNX_MODEL_NAME: session.run(None, {session.get_inputs()[0].name: x})[0],
    }
    out: dict[str, Any] = {}
    for model, want in expected.items():
        body = orjson.dumps({"instances": x.tolist()})
        url = local_url(inference_port, f"/predictions/{model}")
        r = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60)
        got = (
            np.asarray(r.json()["predictions"], dtype=np.float32)
            if r.status_code == 200
            else np.full_like(want, np.nan)
        )
        out[model] = {
            "status": r.status_code,
            "device": r.headers.get("X-Model-Device", "?"),
            "max_abs_diff_vs_cpu_inprocess": float(np.nanmax(np.abs(got - want))),
            "accuracy_64": float((got.argmax(1) == y).mean()),
        }
    return out


def provenance(ran: str, did_not_run: str) -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=20)  # fmt: skip
    name, memory, driver = ([*map(str.strip, smi.stdout.splitlines()[0].split(",")), "?", "?", "?"] if smi.stdout
                            else ["?", "?", "?"])[:3]  # fmt: skip
    versions = {"torch": torch.__version__, "onnxruntime": ort.__version__}
    with_ts = subprocess.run([sys.executable, "-m", "pip", "show", "torchserve"], capture_output=True, text=True)
    src = source()
    versions["torchserve"] = next((ln.split(": ")[1] for ln in with_ts.stdout.splitlines() if ln.startswith("Version")),
                                  "?")  # fmt: skip
    return {
        "date": datetime.date.today().isoformat(),
        "gpu": f"{name} ({memory})",
        "driver": driver,
        "cuda": str(torch.version.cuda),
        "machine": f"{os.cpu_count()} CPU cores; Python {sys.version.split()[0]}",
        "versions": versions,
        "commit": src.commit[:12] + (" (with uncommitted changes)" if src.dirty else ""),
        "ran": ran,
        "did_not_run": did_not_run,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None, help="report folder (default: reports/gpu-<time>)")
    args = p.parse_args(argv)
    reason = cuda_or_reason()
    if reason:
        print(f"make gpu-report needs an NVIDIA GPU with CUDA: {reason}. Nothing was measured.", file=sys.stderr)
        print("On a GPU machine: make gpu-report (or python -m load_tests.runs.gpu); the H200 run of "
              "2026-11-28 is in docs/load-report-gpu-h200/.", file=sys.stderr)  # fmt: skip
        return EXIT_NO_GPU
    from serving.native.process import exit_on_sigterm
    from serving.native.settings import ServingPorts
    from serving.native.stack import running

    exit_on_sigterm()
    out = (args.out or Path("reports") / time.strftime("gpu-%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    artifacts = args.artifacts.resolve()
    print("1/3 in-process model time, GPU and one CPU core ...", flush=True)
    (out / "inproc.json").write_bytes(
        orjson.dumps({"median_us_per_call": inproc(artifacts)}, option=orjson.OPT_INDENT_2)
    )
    ports = ServingPorts.from_env()
    print("2/3 TorchServe alone: served == CPU ...", flush=True)
    with running(artifacts, out / "run", ports, servers=("torchserve",)):
        check = served_equals_cpu(artifacts, ports.torchserve_inference)
        (out / "gpu_check.json").write_bytes(orjson.dumps(check, option=orjson.OPT_INDENT_2))
        print("3/3 capacity beside the floors ...", flush=True)
        env = {**os.environ, **{f"{k.upper()}_PORT": str(v) for k, v in ports.as_dict().items()}}
        cmd = [sys.executable, "-m", "load_tests.runs.capacity", *CAPACITY_ARGS, "--floor-device", "cuda:0",
               "--artifacts", str(artifacts), "--out", str(out / "capacity")]  # fmt: skip
        with (out / "capacity.log").open("w") as log:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout or ():
                print(line, end="", flush=True)
                log.write(line)
            proc.wait()
    devices = {m: c["device"] for m, c in check.items()}
    prov = provenance(
        ran=f"TorchServe alone (models on {devices}), its batching floors (TorchScript on cuda:0, ONNX on the CPU), "
        "the project's open-loop block runner (capacity/report.md); GPU use sampled with nvidia-smi.",
        did_not_run="TF Serving (this command measures TorchServe; the TF side runs from the tensorflow/serving GPU "
        "image in compose and Kubernetes).",
    )
    (out / "provenance.json").write_bytes(orjson.dumps(prov, option=orjson.OPT_INDENT_2))
    print(f"report: {gpu_report.write(out)}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
