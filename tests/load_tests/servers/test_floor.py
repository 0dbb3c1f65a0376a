"""The floor server as a process: real HTTP and real gRPC against real artifacts.

Two floors, each started once for the module on free ports: the TorchScript floor batching (8 rows,
a long 200 ms delay so that requests sent together surely meet) with TorchServe's gRPC method, and
the plain SavedModel floor with TF Serving's. Answers are compared with the artifact run in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx
import numpy as np
import orjson
import pytest

from load_tests.generator.payloads import digits
from load_tests.servers.floor import BATCH_HEADER, PATH, artifact
from load_tests.servers.floor_grpc import BATCH_METADATA
from mnist_serving import protos
from mnist_serving.spec import INPUT_DIM, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME, SIGNATURE_NAME, TORCHSERVE_TENSOR_INPUT
from serving.native.process import ManagedProcess, free_ports
from tests.conftest import REPO

BATCH, DELAY_MS = 8, 200
START_TIMEOUT_S = 180  # TensorFlow's import and warm-up on a busy 2-core machine
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Floor:
    url: str
    grpc: str
    reference: np.ndarray  # the artifact's own output for ROWS, computed in this process


ROWS = digits()[0][:BATCH]


@contextlib.contextmanager
def floor(kind: str, artifacts: Path, log: Path, *options: str) -> Iterator[tuple[str, str]]:
    http_port, grpc_port = free_ports(2)
    argv = [sys.executable, "-m", "load_tests.servers.floor", kind, "--port", str(http_port),
            "--artifacts", str(artifacts), "--grpc-port", str(grpc_port), *options]  # fmt: skip
    proc = ManagedProcess(f"floor-{kind}", argv, log, cwd=REPO)
    proc.start()
    try:
        url = f"http://127.0.0.1:{http_port}"
        proc.wait_until(lambda: httpx.get(f"{url}/ready").status_code == 200, START_TIMEOUT_S)
        yield url, f"127.0.0.1:{grpc_port}"
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def torchscript(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Floor]:
    import torch

    model = torch.jit.load(str(artifact(artifacts, "torchscript"))).eval()
    with torch.inference_mode():
        reference = model(torch.from_numpy(ROWS)).numpy()
    log = tmp_path_factory.mktemp("floor") / "torchscript.log"
    options = ("--batch-size", str(BATCH), "--batch-delay-ms", str(DELAY_MS))
    with floor("torchscript", artifacts, log, *options) as (url, address):
        yield Floor(url, address, reference)


@pytest.fixture(scope="module")
def savedmodel(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Floor]:
    import tensorflow as tf

    signature = tf.saved_model.load(str(artifact(artifacts, "savedmodel"))).signatures[SIGNATURE_NAME]
    reference = signature(**{INPUT_NAME: tf.constant(ROWS)})[OUTPUT_NAME].numpy()
    with floor("savedmodel", artifacts, tmp_path_factory.mktemp("floor") / "savedmodel.log") as (url, address):
        yield Floor(url, address, reference)


# ---- clients: what the load users send ------------------------------------------------------------


def torchserve_request(rows: np.ndarray) -> Any:
    request = protos.PredictionsRequest(model_name="mnist")
    request.input[TORCHSERVE_TENSOR_INPUT] = np.ascontiguousarray(rows, "<f4").tobytes()
    return request


def tf_request(rows: np.ndarray, float_val: bool = False) -> Any:
    request = protos.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "mnist", SIGNATURE_NAME
    tensor = request.inputs[INPUT_NAME]
    tensor.dtype = protos.DT_FLOAT
    for d in rows.shape:
        tensor.tensor_shape.dim.add(size=d)
    if float_val:
        tensor.float_val.extend(rows.ravel().tolist())
    else:
        tensor.tensor_content = np.ascontiguousarray(rows, "<f4").tobytes()
    return request


def stub(channel: Any, method: str, response: Any) -> Any:
    return channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response.FromString)  # fmt: skip


async def rest(session: aiohttp.ClientSession, url: str, rows: np.ndarray) -> tuple[np.ndarray, int]:
    async with session.post(url + PATH, data=orjson.dumps({"instances": rows.tolist()})) as r:
        assert r.status == 200, await r.text()
        return np.asarray((await r.json())["predictions"]), int(r.headers[BATCH_HEADER])


async def torchserve_grpc(channel: grpc.aio.Channel, rows: np.ndarray) -> tuple[np.ndarray, int]:
    call = stub(channel, protos.TORCHSERVE_PREDICTIONS, protos.PredictionResponse)(torchserve_request(rows))
    answer = await call
    batch = dict(await call.trailing_metadata())[BATCH_METADATA]
    return np.frombuffer(answer.prediction, "<f4").reshape(len(rows), NUM_CLASSES), int(batch)


# ---- the batching floor (TorchScript, TorchServe's gRPC method) -----------------------------------


def test_requests_sent_together_share_one_forward_pass(torchscript: Floor) -> None:
    """8 one-row requests at once, half REST and half gRPC: one batch of 8 (one batcher for both)."""

    async def burst() -> list[tuple[np.ndarray, int]]:
        async with aiohttp.ClientSession() as session, grpc.aio.insecure_channel(torchscript.grpc) as channel:
            calls = [
                rest(session, torchscript.url, ROWS[i : i + 1]) if i % 2 else torchserve_grpc(channel, ROWS[i : i + 1])
                for i in range(BATCH)
            ]
            return await asyncio.gather(*calls)

    answers = asyncio.run(burst())
    assert [batch for _, batch in answers] == [BATCH] * BATCH
    np.testing.assert_allclose(np.concatenate([p for p, _ in answers]), torchscript.reference, atol=TOLERANCE)


def test_a_lone_request_waits_for_the_delay_and_no_longer(torchscript: Floor) -> None:
    start = time.perf_counter()
    r = httpx.post(torchscript.url + PATH, content=orjson.dumps({"instances": ROWS[:1].tolist()}))
    elapsed = time.perf_counter() - start
    assert r.status_code == 200 and r.headers[BATCH_HEADER] == "1"
    np.testing.assert_allclose(r.json()["predictions"], torchscript.reference[:1], atol=TOLERANCE)
    assert DELAY_MS / 1000 <= elapsed < DELAY_MS / 1000 + 2.0  # the lower bound is the rule, the upper generous


def test_a_request_larger_than_a_batch_runs_alone_and_whole(torchscript: Floor) -> None:
    rows = np.concatenate([ROWS, ROWS[:3]])  # 11 > 8 rows

    async def call() -> tuple[np.ndarray, int]:
        async with grpc.aio.insecure_channel(torchscript.grpc) as channel:
            return await torchserve_grpc(channel, rows)

    probs, batch = asyncio.run(call())
    assert batch == 1
    np.testing.assert_allclose(
        probs, np.concatenate([torchscript.reference, torchscript.reference[:3]]), atol=TOLERANCE
    )


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"not json", "instances"),
        (b'{"rows": [[0.5]]}', "instances"),
        (orjson.dumps({"instances": [[0.5] * 10]}), f"{INPUT_DIM} numbers"),
        (orjson.dumps({"instances": [["a"] * INPUT_DIM]}), "instances"),
    ],
)
def test_bad_rest_input_is_a_400_naming_the_problem(torchscript: Floor, body: bytes, names: str) -> None:
    r = httpx.post(torchscript.url + PATH, content=body)
    assert r.status_code == 400 and names in r.json()["error"]


@pytest.mark.parametrize(
    ("request_input", "names"),
    [({"tensor": b"abc"}, "whole rows"), ({"data": b"{}"}, "'tensor'"), ({"tensor": b""}, "whole rows")],
)
def test_bad_torchserve_grpc_input_is_invalid_argument(torchscript: Floor, request_input: dict, names: str) -> None:
    with grpc.insecure_channel(torchscript.grpc) as channel:
        request = protos.PredictionsRequest(model_name="mnist")
        for key, value in request_input.items():
            request.input[key] = value
        with pytest.raises(grpc.RpcError) as info:
            stub(channel, protos.TORCHSERVE_PREDICTIONS, protos.PredictionResponse)(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and names in info.value.details()
    assert httpx.get(torchscript.url + "/ready").status_code == 200  # still up


@pytest.mark.parametrize("method", [protos.TORCHSERVE_PREDICTIONS, protos.TF_PREDICT])
def test_bytes_that_are_no_request_are_invalid_argument(torchscript: Floor, savedmodel: Floor, method: str) -> None:
    address = torchscript.grpc if method == protos.TORCHSERVE_PREDICTIONS else savedmodel.grpc
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(method)(b"\xff\xff\xff", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a Predict" in info.value.details()


# ---- the plain floor (SavedModel, TF Serving's gRPC method) ---------------------------------------


@pytest.mark.parametrize("float_val", [False, True], ids=["tensor_content", "float_val"])
def test_tf_serving_predict_answers_as_tf_serving(savedmodel: Floor, float_val: bool) -> None:
    with grpc.insecure_channel(savedmodel.grpc) as channel:
        answer, call = stub(channel, protos.TF_PREDICT, protos.PredictResponse).with_call(
            tf_request(ROWS, float_val), timeout=30
        )
    out = answer.outputs[OUTPUT_NAME]
    assert out.dtype == protos.DT_FLOAT and [d.size for d in out.tensor_shape.dim] == [BATCH, NUM_CLASSES]
    probs = np.frombuffer(out.tensor_content, "<f4").reshape(BATCH, NUM_CLASSES)
    np.testing.assert_allclose(probs, savedmodel.reference, atol=TOLERANCE)
    spec = answer.model_spec
    assert (spec.name, spec.version.value, spec.signature_name) == ("mnist", 1, SIGNATURE_NAME)
    assert BATCH_METADATA not in dict(call.trailing_metadata() or ())  # plain: no batch to report


def test_the_plain_rest_floor_is_unchanged(savedmodel: Floor) -> None:
    r = httpx.post(savedmodel.url + PATH, content=orjson.dumps({"instances": ROWS.tolist()}))
    assert r.status_code == 200 and BATCH_HEADER not in r.headers
    np.testing.assert_allclose(r.json()["predictions"], savedmodel.reference, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (lambda r: setattr(r.inputs[INPUT_NAME], "dtype", 3), "DT_FLOAT"),
        (lambda r: r.inputs[INPUT_NAME].tensor_shape.dim[1].__setattr__("size", 10), "shape"),
        (lambda r: setattr(r.inputs[INPUT_NAME], "tensor_content", b"\0" * 12), "tensor_content"),
        (lambda r: (r.inputs["images"].CopyFrom(r.inputs[INPUT_NAME]), r.inputs.__delitem__(INPUT_NAME)), INPUT_NAME),
    ],
    ids=["dtype", "shape", "content", "name"],
)
def test_bad_tf_grpc_input_is_invalid_argument(savedmodel: Floor, change: Any, names: str) -> None:
    request = tf_request(ROWS[:2])
    change(request)
    with grpc.insecure_channel(savedmodel.grpc) as channel, pytest.raises(grpc.RpcError) as info:
        stub(channel, protos.TF_PREDICT, protos.PredictResponse)(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and names in info.value.details()
