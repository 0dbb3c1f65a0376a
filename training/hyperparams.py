"""Training settings shared by both frameworks."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class HyperParams:
    epochs: int = 16  # chosen on the development sets (training/dev_select.py), with serifs=0.5
    batch_size: int = 32
    learning_rate: float = 1e-3  # Adam's default in both frameworks
    hidden: int = 128
    dropout: float = 0.2
    seed: int = 42
    # Per-epoch cosine decay from learning_rate towards 0, identical in both frameworks: the last
    # epochs settle instead of stopping mid-step (measured: steadier accuracy across seeds).
    cosine_decay: bool = True
    # Weight initialisation: "torch" = PyTorch's nn.Linear default, U(+-1/sqrt(fan_in)) for kernels and
    # biases, in both frameworks (the same network starts the same way); "own" = each framework's
    # default (Keras: Glorot-uniform kernels, zero biases). Chosen on the development sets (dev_select).
    init: str = "torch"

    def lr_at(self, epoch: int) -> float:
        if not self.cosine_decay:
            return self.learning_rate
        return self.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
