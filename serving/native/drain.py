"""``python -m serving.native.drain``: how long each server takes to drain the requests it holds
after SIGTERM, measured on real processes: the sizes behind the Kubernetes grace periods
(k8s/base, docs/rollout.md).

For each of TF Serving (here the stand-in), TorchServe (SIGTERM to its Java frontend, as the image's
launcher forwards it) and the gateway (uvicorn; its requests go to TF Serving): a burst of
``--burst`` concurrent requests of ``--rows`` rows each is sent, and once they are in flight the
process gets SIGTERM. Reported: how many of them were answered 200 and how many failed, when the
last answer came and when the process exited, both from the SIGTERM. Then the process is started
again for the next repeat. A server that drains answers every request it held; one that does not
fails them, and a Kubernetes pod then needs its preStop pause to outlast what it holds instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from mnist_serving.ports import local_url
from mnist_serving.spec import INPUT_DIM, TF_MODEL_NAME, TORCH_MODEL_NAME
from serving.native import torchserve
from serving.native.process import ManagedProcess
from serving.native.settings import ServingPorts
from serving.native.stack import ServingStack

IN_FLIGHT_AFTER_S = 0.02  # the burst is sent, then SIGTERM this much later: the requests are in the server
EXIT_WAIT_S = 30.0


@dataclass(frozen=True)
class Drain:
    target: str
    sent: int
    answered: int  # 200
    failed: int  # any other status, or no answer
    last_answer_s: float  # after SIGTERM
    exit_s: float  # the process gone, after SIGTERM


def _signal_target(target: str, proc: ManagedProcess) -> psutil.Process:
    """The process Kubernetes (or the image's launcher) would send SIGTERM to."""
    root = psutil.Process(proc.pid)
    if target != "torchserve":
        return root
    (java,) = [p for p in root.children(recursive=True) if "org.pytorch.serve.ModelServer" in " ".join(p.cmdline())]
    return java


def _url(target: str, ports: ServingPorts) -> str:
    if target == "tfserving":
        return local_url(ports.tfserving_rest, f"/v1/models/{TF_MODEL_NAME}:predict")
    if target == "torchserve":
        return local_url(ports.torchserve_inference, f"/predictions/{TORCH_MODEL_NAME}")
    return local_url(ports.gateway, "/v1/predict?backend=tfserving")


async def _burst(url: str, n: int, rows: int, victim: psutil.Process) -> tuple[list[tuple[int, float]], float, float]:
    """``n`` requests at once on ``n`` keep-alive connections opened beforehand (so each request is
    on the wire at once, not waiting for a connection), SIGTERM once they are in the server."""
    body = json.dumps({"instances": [[0.5] * INPUT_DIM] * rows}).encode()
    headers = {"Content-Type": "application/json", "X-Request-Timeout-Ms": "30000"}
    out: list[tuple[int, float]] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n)) as client:

        async def one(record: bool) -> None:
            try:
                r = await client.post(url, content=body, headers=headers)
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            if record:
                out.append((status, time.monotonic()))

        await asyncio.gather(*(one(False) for _ in range(n)))  # opens the n connections
        tasks = [asyncio.create_task(one(True)) for _ in range(n)]
        await asyncio.sleep(IN_FLIGHT_AFTER_S)
        sigterm = time.monotonic()
        victim.send_signal(signal.SIGTERM)
        await asyncio.gather(*tasks)
    with contextlib.suppress(psutil.TimeoutExpired):
        victim.wait(timeout=EXIT_WAIT_S)
    return out, sigterm, time.monotonic()


def measure(stack: ServingStack, target: str, burst: int, rows: int) -> Drain:
    (proc,) = [p for p in stack.processes if p.name == target]
    victim = _signal_target(target, proc)
    answers, sigterm, exited = asyncio.run(_burst(_url(target, stack.ports), burst, rows, victim))
    ok = [t for status, t in answers if status == 200]
    result = Drain(
        target,
        len(answers),
        len(ok),
        len(answers) - len(ok),
        round(max((t for _, t in answers), default=sigterm) - sigterm, 3),
        round(exited - sigterm, 3),
    )
    proc.kill()  # what is left of its group
    proc.start()
    proc.wait_until(stack.readiness[target], 180)
    if target == "torchserve":
        torchserve.warm(stack.ports)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--burst", type=int, default=200, help="concurrent requests held at SIGTERM (default: %(default)s)")
    p.add_argument("--rows", type=int, default=1, help="rows per request (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, help="write every measurement here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="drain-") as run_dir:
        stack = ServingStack(args.artifacts, Path(run_dir), ServingPorts.free(), with_gateway=True)
        stack.start()
        try:
            results = [
                measure(stack, target, args.burst, args.rows)
                for _ in range(args.repeats)
                for target in ("tfserving", "torchserve", "gateway")
            ]
        finally:
            stack.stop()
    what = f"{args.burst} requests of {args.rows} row(s) sent {IN_FLIGHT_AFTER_S * 1e3:.0f} ms before SIGTERM"
    print(f"{what} on kept-alive connections; {args.repeats} repeats (min / median / max)")
    print("| target | answered 200 | failed | last answer after SIGTERM | exited after SIGTERM |")
    print("|---|---|---|---|---|")
    for target in ("tfserving", "torchserve", "gateway"):
        rs = [r for r in results if r.target == target]

        def spread(values: list[float]) -> str:
            return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f} s"

        print(
            f"| {target} | {sum(r.answered for r in rs)} of {sum(r.sent for r in rs)} | {sum(r.failed for r in rs)} | "
            f"{spread([r.last_answer_s for r in rs])} | {spread([r.exit_s for r in rs])} |"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
