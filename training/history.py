"""Per-epoch metrics, recorded the same way for both frameworks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class History:
    framework: str
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, loss: float, acc: float, test_loss: float, test_acc: float) -> None:
        self.loss.append(round(float(loss), 6))
        self.accuracy.append(round(float(acc), 6))
        self.test_loss.append(round(float(test_loss), 6))
        self.test_accuracy.append(round(float(test_acc), 6))
        epoch = len(self.loss)
        print(
            f"[{self.framework}] epoch {epoch}: loss={loss:.4f} acc={acc:.4f} "
            f"test_loss={test_loss:.4f} test_acc={test_acc:.4f}",
            flush=True,
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
