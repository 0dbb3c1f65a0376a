"""TorchServe's config.properties has one owner, serving/torchserve/config.py: it reads the shipped
file, changes it as properties and renders it for a run and for Kubernetes."""

from __future__ import annotations

import re
from pathlib import Path

from serving.torchserve import config
from tests.conftest import REPO
from tests.test_imports import SOURCES


def test_only_its_owner_reads_config_properties() -> None:
    owner = REPO / "serving/torchserve/config.py"
    offenders = []
    for module, path in SOURCES.items():
        if path == owner or module.startswith("tests.serving.test_torchserve_config"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "config.properties" in line and re.search(r"\.(read_text|read_bytes)\(|open\(", line):
                offenders.append(f"{path.relative_to(REPO)}:{n}")
            if 'r"\\\\\\n' in line:  # a Java-properties continuation parser of its own
                offenders.append(f"{path.relative_to(REPO)}:{n}")
    assert offenders == []


def test_read_render_round_trip(tmp_path: Path) -> None:
    props = config.read()
    assert props["async_logging"] == "true" and props["metrics_mode"] == "prometheus"
    path = tmp_path / "config.properties"
    path.write_text(config.render(props))
    assert config.read(path) == props
    changed = config.with_models(props, version="7", batchSize=8)
    assert {m["batchSize"] for m in config.models(changed).values()} == {8}
    assert all(list(v) == ["7"] for v in __import__("json").loads(changed["models"]).values())


def test_the_tuning_is_in_the_shipped_file() -> None:
    """What make bench-tuning chose (docs/load-testing.md#tuning) is what every environment loads."""
    props = config.read()
    assert set(config.TUNING_KEYS) <= set(props)
    assert props["number_of_netty_threads"] == props["netty_client_threads"] == "1"
    assert props["disable_system_metrics"] == "true"
    assert props["decode_input_request"] == "false"  # the handler decodes JSON itself (orjson)
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"} <= set(props["vmargs"].split())


def test_only_its_owner_reads_tfserving_configs() -> None:
    """The same rule for TF Serving's files and serving/tfserving/config.py."""
    owner = REPO / "serving/tfserving/config.py"
    names = ("batching.config", "models.config", "monitoring.config")
    offenders = []
    for module, path in SOURCES.items():
        # the stand-in parses them as the real server does: it is the server, not a second owner
        if path == owner or module.startswith(("tests.", "serving.tfserving_standin")):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if any(name in line for name in names) and re.search(r"\.(read_text|read_bytes)\(|open\(", line):
                offenders.append(f"{path.relative_to(REPO)}:{n}")
    assert offenders == []
