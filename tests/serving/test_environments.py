"""The native servers run what serving/environments.py declares for ``native`` (checked on the
session's running processes), the stand-in accepts every environment's command line and names what
it ignores, and serving/README.md shows the table as it is."""

from __future__ import annotations

import psutil
import pytest

from serving.environments import TFSERVING, TORCHSERVE, Environment, table_markdown
from serving.native.stack import ServingStack
from serving.tfserving import config as tf_config
from serving.tfserving_standin.__main__ import IGNORED_FLAGS, ignored_flags, parse_flags
from serving.torchserve import config as ts_config
from tests.conftest import REPO


def _process(stack: ServingStack, name: str) -> psutil.Process:
    (proc,) = [p for p in stack.processes if p.name == name]
    assert proc.pid is not None
    return psutil.Process(proc.pid)


def test_native_torchserve_runs_with_the_native_settings(stack: ServingStack) -> None:
    root = _process(stack, "torchserve")
    (java,) = [p for p in root.children(recursive=True) if "org.pytorch.serve.ModelServer" in " ".join(p.cmdline())]
    env = java.environ()
    for key, value in TORCHSERVE[Environment.NATIVE].env.items():
        assert env.get(key) == value, key
    # The JVM flags of config.properties reached the JVM (the Python CLI reads vmargs from it).
    for flag in ts_config.read()["vmargs"].split():
        assert flag in java.cmdline(), flag
    # decode_input_request reached the Python workers: they hand JSON bodies to the handler undecoded.
    workers = [p for p in java.children() if "model_service_worker" in " ".join(p.cmdline())]
    assert workers and {w.environ().get("TS_DECODE_INPUT_REQUEST") for w in workers} == {"false"}


def test_native_tfserving_runs_with_the_native_flags(stack: ServingStack) -> None:
    argv = _process(stack, "tfserving").cmdline()
    flags = TFSERVING[Environment.NATIVE].argv()
    assert argv[-len(flags) :] == flags
    assert "--enable_batching=true" in argv


def test_the_standin_names_the_flags_it_ignores(stack: ServingStack) -> None:
    given = [f for f in IGNORED_FLAGS if any(a.startswith(f"--{f}=") for a in TFSERVING[Environment.NATIVE].argv())]
    assert given, "the native flags give the stand-in nothing to ignore: this test checks nothing"
    log = (stack.run_dir / "tfserving.log").read_text()
    assert "accepted but not honoured by the stand-in: " + ", ".join(f"--{f}" for f in given) in log


@pytest.mark.parametrize("environment", list(Environment))
def test_the_standin_takes_every_environments_command_line(environment: Environment) -> None:
    args = parse_flags(tf_config.argv(environment))
    flags = TFSERVING[environment].flags
    assert args.tensorflow_intra_op_parallelism == int(flags["tensorflow_intra_op_parallelism"])
    assert args.tensorflow_inter_op_parallelism == int(flags["tensorflow_inter_op_parallelism"])
    assert args.enable_model_warmup is (flags["enable_model_warmup"] == "true")
    assert set(ignored_flags(args)) == {f for f in flags if f in IGNORED_FLAGS}


def test_the_standin_honours_the_thread_pool_flags(artifacts) -> None:
    from serving.tfserving_standin.servable import Servable

    version = max(int(p.name) for p in (artifacts / "tfserving/mnist").iterdir() if p.name.isdigit())
    s = Servable("mnist", version, artifacts / f"tfserving/mnist/{version}", intra_op_threads=1, inter_op_threads=2)
    try:
        config = s.session._config  # the ConfigProto the session was made with
        assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (1, 2)
    finally:
        s.close()


def test_the_readiness_rule_is_the_one_the_shell_check_applies() -> None:
    def status(*states: str) -> dict[str, list[dict[str, str]]]:
        return {"model_version_status": [{"version": str(i), "state": s} for i, s in enumerate(states, 1)]}

    # grep -q AVAILABLE: ready as soon as one version can serve, whatever the others do
    assert tf_config.status_is_ready(status("AVAILABLE"))
    assert tf_config.status_is_ready(status("END", "AVAILABLE", "LOADING"))
    assert not tf_config.status_is_ready(status("LOADING")) and not tf_config.status_is_ready({})
    assert tf_config.STATUS_PATH in tf_config.READY_COMMAND and "AVAILABLE" in tf_config.READY_COMMAND


def test_serving_readme_shows_the_table_as_it_is() -> None:
    assert table_markdown() in (REPO / "serving/README.md").read_text(), (
        "paste `python -m serving.environments` into serving/README.md"
    )
