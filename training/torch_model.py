"""PyTorch: the same network and optimizer, exported as TorchScript and ONNX."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mnist_serving.spec import INPUT_DIM, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME
from training.history import History
from training.hyperparams import HyperParams

ONNX_OPSET = 17


class MnistNet(nn.Module):
    """784 -> Dense(128, ReLU) -> Dropout -> Dense(10) -> softmax.

    ``logits`` is what training optimises (cross-entropy is stabler on logits);
    ``forward`` returns probabilities, which is what the servers answer with.
    """

    def __init__(self, hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(INPUT_DIM, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, NUM_CLASSES)
        )

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.body(pixels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.body(pixels), dim=1)


def train(
    hp: HyperParams, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[MnistNet, History]:
    if hp.init not in ("own", "torch"):  # PyTorch's own default *is* the shared "torch" scheme
        raise ValueError(f"unknown init {hp.init!r}")
    torch.manual_seed(hp.seed)
    model = MnistNet(hp.hidden, hp.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_test), torch.from_numpy(y_test)
    generator = torch.Generator().manual_seed(hp.seed)
    history = History("pytorch")
    start = time.perf_counter()
    for epoch in range(hp.epochs):
        for group in optimizer.param_groups:
            group["lr"] = hp.lr_at(epoch)
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        total_loss, correct = 0.0, 0
        for i in range(0, len(xt), hp.batch_size):
            idx = order[i : i + hp.batch_size]
            logits = model.logits(xt[idx])
            loss = loss_fn(logits, yt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yt[idx]).sum())
        model.eval()
        with torch.no_grad():
            val_logits = model.logits(xv)
            val_loss = float(loss_fn(val_logits, yv))
            val_acc = float((val_logits.argmax(1) == yv).float().mean())
        history.add(total_loss / len(xt), correct / len(xt), val_loss, val_acc)
    history.seconds = round(time.perf_counter() - start, 2)
    return model.eval(), history


def weights(model: MnistNet) -> list[np.ndarray]:
    """The trained weights in Keras's order and layout: kernel [in, out], bias, for each Dense."""
    first, last = _linears(model)
    return [t.detach().numpy().copy() for t in (first.weight.T, first.bias, last.weight.T, last.bias)]


def _linears(model: MnistNet) -> tuple[nn.Linear, nn.Linear]:
    first, last = (m for m in model.body if isinstance(m, nn.Linear))
    return first, last


def from_weights(hp: HyperParams, ws: list[np.ndarray]) -> MnistNet:
    """The network carrying weights trained elsewhere (``keras_model.weights``' order and layout)."""
    model = MnistNet(hp.hidden, hp.dropout)
    first, last = _linears(model)
    with torch.no_grad():
        for param, w in zip((first.weight, first.bias, last.weight, last.bias), ws, strict=True):
            value = torch.from_numpy(np.ascontiguousarray(w.T if w.ndim == 2 else w, dtype=np.float32))
            if param.shape != value.shape:
                raise ValueError(f"weight shape {tuple(value.shape)} does not fit {tuple(param.shape)}")
            param.copy_(value)
    return model.eval()


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x.astype(np.float32))).numpy()


def export_torchscript(model: MnistNet, path: Path) -> None:
    scripted = torch.jit.script(model.eval())
    scripted.save(str(path))


def export_onnx(model: MnistNet, path: Path) -> None:
    example = torch.zeros(2, INPUT_DIM)
    torch.onnx.export(
        model.eval(),
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=ONNX_OPSET,
        dynamo=False,
    )
