"""Training settings shared by both frameworks."""

from dataclasses import dataclass


@dataclass(frozen=True)
class HyperParams:
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3  # Adam's default in both frameworks
    hidden: int = 128
    dropout: float = 0.2
    seed: int = 42
