"""Both frameworks start the same network the same way: PyTorch's nn.Linear default, U(+-1/sqrt(fan_in))."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist_serving.spec import INPUT_DIM
from training import keras_model, torch_model
from training.hyperparams import HyperParams


def _bounds_and_spread(layers: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[float, float, float]]:
    """(1/sqrt(fan_in), max |w|, max |b|) per layer; the kernel is (fan_in, fan_out)."""
    return [(w.shape[0] ** -0.5, float(np.abs(w).max()), float(np.abs(b).max())) for w, b in layers]


def _keras_layers(hp: HyperParams) -> list[tuple[np.ndarray, np.ndarray]]:
    model = keras_model.build(hp)
    dense = [layer for layer in model.layers if layer.get_weights()]
    return [(np.asarray(d.get_weights()[0]), np.asarray(d.get_weights()[1])) for d in dense]


def _torch_layers(hp: HyperParams) -> list[tuple[np.ndarray, np.ndarray]]:
    net = torch_model.MnistNet(hp.hidden, hp.dropout)
    linears = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linears]


def test_keras_uses_pytorch_initialisation_by_default() -> None:
    hp = HyperParams()
    assert hp.init == "torch"
    keras_spread = _bounds_and_spread(_keras_layers(hp))
    torch_spread = _bounds_and_spread(_torch_layers(hp))
    assert [round(b, 6) for b, _, _ in keras_spread] == [round(b, 6) for b, _, _ in torch_spread]
    assert keras_spread[0][0] == pytest.approx(INPUT_DIM**-0.5)
    for (bound, w_max, b_max), (_, t_w, t_b) in zip(keras_spread, torch_spread, strict=True):
        # Uniform draws fill the interval: the largest of 100k+ values sits at the bound.
        assert 0.9 * bound < w_max <= bound and 0.9 * bound < t_w <= bound
        # Biases too (Keras's own default would leave them at zero).
        assert 0.5 * bound < b_max <= bound and 0.5 * bound < t_b <= bound


def test_keras_own_initialisation_is_still_available() -> None:
    (w, b), _ = _keras_layers(HyperParams(init="own"))
    glorot = (6 / (w.shape[0] + w.shape[1])) ** 0.5
    assert np.abs(w).max() > w.shape[0] ** -0.5  # Glorot's limit is wider than 1/sqrt(784)
    assert np.abs(w).max() <= glorot
    assert not b.any()


@pytest.mark.parametrize("module", [keras_model.build, torch_model.train])
def test_unknown_initialisation_is_an_error(module) -> None:
    hp = HyperParams(init="he")
    empty = np.zeros((0, INPUT_DIM), np.float32), np.zeros(0, np.int64)
    with pytest.raises(ValueError, match="unknown init 'he'"):
        module(hp) if module is keras_model.build else module(hp, *empty, *empty)
