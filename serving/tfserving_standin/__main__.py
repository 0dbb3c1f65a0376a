"""``python -m serving.tfserving_standin`` with tensorflow_model_server's flags.

    python -m serving.tfserving_standin --port=8500 --rest_api_port=8501 \
        --model_config_file=serving/tfserving/models.config --enable_batching=true \
        --batching_parameters_file=serving/tfserving/batching.config \
        --monitoring_config_file=serving/tfserving/monitoring.config

Honoured as the real server does: the ports, the three config files, --enable_batching,
--enable_model_warmup (the SavedModel's warmup records are replayed before serving),
--tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism (the session's thread pools),
and the version lifecycle (manager.py): --file_system_poll_wait_seconds (new versions on disk, and
a reloaded policy, take effect at the next poll; 0 polls once at start),
--model_config_file_poll_wait_seconds (re-read the config file and reload it when it changed),
--allow_version_labels_for_unavailable_models, --max_num_load_retries and
--load_retry_interval_micros; ``ModelService.HandleReloadConfigRequest`` reloads a config over gRPC.
Accepted and ignored, named in a start-up warning when given: IGNORED_FLAGS (REST runs on one event
loop, so --rest_api_num_threads has nothing to size).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_serving.ports import TFSERVING_GRPC
from serving.tfserving_standin import BANNER

if TYPE_CHECKING:
    from serving.tfserving_standin.manager import ModelManager

log = logging.getLogger("tfserving_standin")

# Flags the real server has that change nothing here; accepted so the same command line works, and
# named at start-up when given (serving/environments.py sets some of them for the real server).
IGNORED_FLAGS = (
    "rest_api_num_threads",
    "grpc_max_threads",
    "rest_api_timeout_in_ms",
    "tensorflow_session_parallelism",
    "grpc_channel_arguments",
    "enable_model_warmup_dry_run",
    "per_process_gpu_memory_fraction",
)


def _bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parse_flags(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="tfserving-standin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--port", type=int, default=TFSERVING_GRPC, help="gRPC port")
    p.add_argument("--rest_api_port", type=int, default=0, help="REST port (0: no REST, as in the real server)")
    p.add_argument("--model_config_file", default="")
    p.add_argument("--model_name", default="default")
    p.add_argument("--model_base_path", default="")
    p.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False)
    p.add_argument("--batching_parameters_file", default="")
    p.add_argument("--monitoring_config_file", default="")
    p.add_argument("--enable_model_warmup", type=_bool, nargs="?", const=True, default=True)
    p.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0)
    p.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0)
    # The version lifecycle, with tensorflow_model_server's defaults.
    p.add_argument("--file_system_poll_wait_seconds", type=int, default=1)
    p.add_argument("--model_config_file_poll_wait_seconds", type=int, default=0)
    p.add_argument("--allow_version_labels_for_unavailable_models", type=_bool, nargs="?", const=True, default=False)
    p.add_argument("--max_num_load_retries", type=int, default=5)
    p.add_argument("--load_retry_interval_micros", type=int, default=60_000_000)
    # Not a real-server flag: the real binary binds every interface; the stand-in binds loopback natively.
    p.add_argument("--bind_address", default=os.environ.get("TFSERVING_STANDIN_HOST", "127.0.0.1"))
    for name in IGNORED_FLAGS:
        p.add_argument(f"--{name}", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.model_config_file and not args.model_base_path:
        p.error("either --model_config_file or --model_base_path is required")
    return args


def ignored_flags(args: argparse.Namespace) -> list[str]:
    """The IGNORED_FLAGS this command line gave."""
    return [name for name in IGNORED_FLAGS if getattr(args, name) is not None]


async def serve(args: argparse.Namespace) -> None:
    import grpc
    import uvicorn

    from serving.tfserving_standin import configs
    from serving.tfserving_standin.errors import ServingError
    from serving.tfserving_standin.grpc_api import add_services
    from serving.tfserving_standin.manager import Lifecycle, ModelManager
    from serving.tfserving_standin.rest import build_app

    require_gpu()
    config_text = Path(args.model_config_file).read_text() if args.model_config_file else ""
    model_config = (
        configs.load_model_config(args.model_config_file)
        if args.model_config_file
        else configs.single_model_config(args.model_name, args.model_base_path)
    )
    batching = configs.load_batching(args.batching_parameters_file) if args.enable_batching else None
    metrics_path = configs.load_monitoring(args.monitoring_config_file)
    lifecycle = Lifecycle(
        warmup=args.enable_model_warmup,
        file_system_poll_wait_s=args.file_system_poll_wait_seconds,
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_s=max(0, args.load_retry_interval_micros) / 1e6,
        allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
    )
    manager = ModelManager(
        batching, args.tensorflow_intra_op_parallelism, args.tensorflow_inter_op_parallelism, lifecycle
    )
    try:
        await manager.start(model_config)
    except ServingError as exc:  # a label on a version that is not AVAILABLE, a bad platform ...
        raise ValueError(exc.message) from exc
    log.info("batching: %s", batching if batching else "off")
    config_poll = None
    if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
        config_poll = asyncio.create_task(
            poll_config_file(manager, args.model_config_file, args.model_config_file_poll_wait_seconds, config_text)
        )

    grpc_server = grpc.aio.server()
    add_services(grpc_server, manager)
    try:
        bound = grpc_server.add_insecure_port(f"{args.bind_address}:{args.port}")
    except RuntimeError as exc:
        raise OSError(f"cannot bind gRPC port {args.port}: {exc}") from exc
    if not bound:
        raise OSError(f"cannot bind gRPC port {args.port}")
    rest_socket = _bind(args.bind_address, args.rest_api_port) if args.rest_api_port else None
    await grpc_server.start()
    log.info("Running gRPC ModelServer at %s:%d ...", args.bind_address, args.port)

    rest_task = None
    rest = uvicorn.Server(
        uvicorn.Config(build_app(manager, metrics_path), log_level="warning", access_log=False, lifespan="off")
    )
    if rest_socket is not None:
        # _serve, not serve: serve() would take over SIGINT/SIGTERM, which this process handles itself.
        rest_task = asyncio.create_task(rest._serve(sockets=[rest_socket]))
        log.info("Exporting HTTP/REST API at:%s:%d ...", args.bind_address, args.rest_api_port)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    if rest_task is not None:
        rest.should_exit = True
        await rest_task
    await grpc_server.stop(grace=1)
    if config_poll is not None:
        config_poll.cancel()
    manager.close()


async def poll_config_file(manager: ModelManager, path: str, every_s: float, last: str) -> None:
    """--model_config_file_poll_wait_seconds: reload the config file whenever its text differs from
    ``last`` (what the server runs); a file that does not parse, or a reload that is refused, is
    logged and the running config kept."""
    from pathlib import Path

    from serving.tfserving_standin import configs
    from serving.tfserving_standin.errors import ServingError

    while True:
        await asyncio.sleep(every_s)
        try:
            text = Path(path).read_text()
            if text == last:
                continue
            last = text
            await manager.reload(configs.load_model_config(path))
        except (OSError, configs.ConfigError) as exc:
            log.error("model config file not reloaded: %s", exc)
        except ServingError as exc:
            log.error("model config file not reloaded: %s", exc.message)


def require_gpu() -> None:
    """With REQUIRE_GPU=1 (every GPU deployment sets it) refuse to serve unless TensorFlow sees a GPU."""
    from mnist_serving.spec import REQUIRE_GPU_ENV

    if os.environ.get(REQUIRE_GPU_ENV, "").strip().lower() not in ("1", "true", "yes"):
        return
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise ValueError(
            f"{REQUIRE_GPU_ENV}=1 but TensorFlow sees no GPU (tensorflow {tf.__version__}, built with CUDA: "
            f"{tf.test.is_built_with_cuda()}): refusing to serve on the CPU"
        )
    log.info("GPU required and present: %s", ", ".join(g.name for g in gpus))


def _bind(host: str, port: int) -> socket.socket:
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then (else +40 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot bind REST port {port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    args = parse_flags(argv)
    logging.basicConfig(
        level=os.environ.get("TFSERVING_STANDIN_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log.warning(BANNER)
    ignored = ignored_flags(args)
    if ignored:
        log.warning("accepted but not honoured by the stand-in: %s", ", ".join(f"--{f}" for f in ignored))
    try:
        asyncio.run(serve(args))
    except (OSError, ValueError) as exc:
        log.error("failed to start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
