"""``python -m training.dev_select``: choose the augmentation on development sets, never on the reported ones.

Each candidate trains one framework's network (``--framework``, PyTorch by default) and is scored
on printed and drawn sets rendered with *other seeds*
than the reported ones (same fonts and stroke templates, other renderings). The held-out MNIST
digits are a floor here (≥ 0.93), not a target. The winner becomes ``Augmentation()``'s defaults;
then ``make train`` measures the reported sets once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from training import evalsets, torch_model
from training.augment import Augmentation, augment
from training.data import load_split
from training.hyperparams import HyperParams

DEV_PRINTED_SEEDS = (evalsets.SEED + 100, evalsets.SEED + 101)
DEV_DRAWN_SEED = evalsets.SEED + 102
MNIST_FLOOR = 0.93

# Round 1 varied one knob at a time from the previous defaults (serifs .3, 12 epochs); round 2 went
# around its best. Measured 2026-11-23 (PyTorch; printed = mean of two dev sets, 1,140 images):
#   previous .891 | serifs .5 .909 | thicker .35 .875 | wider .860 | renorm .7 .870 | copies 12 .892
#   epochs 16 .893 | serifs .5 thicker .35 .889 | serifs .7 .876 | serifs .5 epochs 16 .915 (chosen)
# Drawn stayed .973-.990 and MNIST .964-.976 for all. The candidates are spelled out in full, so
# they keep their meaning now that the defaults are the chosen ones.
# Round 3 (Keras, the framework under the printed goal), 2026-11-23: Keras's own init (Glorot) vs
# PyTorch's in Keras too, printed dev: seed 42 .887 vs .911 | 43 .856 vs .893 | 44 .882 vs .868;
# mean .875 vs .890 (seed spread +-2 points, so a modest gain). Drawn .980 both, MNIST .971 vs .968.
# Chosen: PyTorch's init in both frameworks (PyTorch itself is unchanged).
_PREVIOUS: dict[str, Any] = {"serifs": 0.3}
_OWN_INIT = "own"
CANDIDATES: dict[str, tuple[Augmentation, HyperParams]] = {
    "current": (Augmentation(**_PREVIOUS), HyperParams(epochs=12, init=_OWN_INIT)),
    "serifs .5": (Augmentation(serifs=0.5), HyperParams(epochs=12, init=_OWN_INIT)),
    "thicker .35": (Augmentation(**_PREVIOUS, thicker=0.35), HyperParams(epochs=12, init=_OWN_INIT)),
    "wider": (Augmentation(**_PREVIOUS, max_aspect=0.4, scale=(0.6, 1.15)), HyperParams(epochs=12, init=_OWN_INIT)),
    "renorm .7": (Augmentation(**_PREVIOUS, renormalised=0.7), HyperParams(epochs=12, init=_OWN_INIT)),
    "copies 12": (Augmentation(**_PREVIOUS, copies=12), HyperParams(epochs=12, init=_OWN_INIT)),
    "epochs 16": (Augmentation(**_PREVIOUS), HyperParams(epochs=16, init=_OWN_INIT)),
    "serifs .5 thicker .35": (Augmentation(serifs=0.5, thicker=0.35), HyperParams(epochs=12, init=_OWN_INIT)),
    # Round 2, around round 1's best (serifs .5).
    "serifs .7": (Augmentation(serifs=0.7), HyperParams(epochs=12, init=_OWN_INIT)),
    "serifs .5 epochs 16": (Augmentation(serifs=0.5), HyperParams(epochs=16, init=_OWN_INIT)),
    # Round 3 (Keras, the framework under the printed goal): PyTorch's initialisation in both.
    "serifs .5 epochs 16 torch-init": (Augmentation(serifs=0.5), HyperParams(epochs=16, init="torch")),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    p.add_argument("--framework", choices=("pytorch", "keras"), default="pytorch")
    args = p.parse_args(argv)
    split = load_split(None, test_size=1000, seed=HyperParams().seed)
    printed = [evalsets.printed(s) for s in DEV_PRINTED_SEEDS]
    drawn = evalsets.drawn(DEV_DRAWN_SEED)
    print(f"dev sets: printed {sum(len(s.labels) for s in printed)} images, drawn {len(drawn.labels)}", flush=True)
    print("| candidate | printed (dev) | drawn (dev) | MNIST held-out | seconds |\n|---|---|---|---|---|", flush=True)
    for name, (aug, hp) in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        x, y = augment(split.x_train, split.y_train, aug, hp.seed)
        predict = _trained(args.framework, hp, x, y, split.x_test, split.y_test)

        pr = float(np.mean([evalsets.accuracy(predict, s) for s in printed]))
        dr = evalsets.accuracy(predict, drawn)
        mn = float((predict(split.x_test).argmax(1) == split.y_test).mean())
        flag = "" if mn >= MNIST_FLOOR else " (below MNIST floor)"
        print(f"| {name}{flag} | {pr:.4f} | {dr:.4f} | {mn:.4f} | {time.perf_counter() - start:.0f} |", flush=True)
        del aug, hp  # each candidate stands alone
    print(f"defaults: {dataclasses.asdict(Augmentation())}", flush=True)
    return 0


def _trained(
    framework: str, hp: HyperParams, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    if framework == "keras":
        from training import keras_model

        knet, _ = keras_model.train(hp, x, y, x_test, y_test)
        return lambda rows: keras_model.predict(knet, rows)
    tnet, _ = torch_model.train(hp, x, y, x_test, y_test)
    return lambda rows: torch_model.predict(tnet, rows)


if __name__ == "__main__":
    sys.exit(main())
