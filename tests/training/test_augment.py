"""Augmentation: reproducible, label-preserving, and shaped like MNIST where it says so."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from training.augment import Augmentation, augment, mnist_box


def test_seeded_and_label_preserving(test_split) -> None:
    x, y = test_split.x_train[:200], test_split.y_train[:200]
    aug = Augmentation(copies=3)
    xa, ya = augment(x, y, aug, seed=7)
    assert xa.shape == (800, 784) and xa.dtype == np.float32 and xa.min() >= 0 and xa.max() <= 1
    assert (np.bincount(ya, minlength=10) == 4 * np.bincount(y, minlength=10)).all()
    xb, yb = augment(x, y, aug, seed=7)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(augment(x, y, aug, seed=8)[0], xa)
    originals = {row.tobytes() for row in x}
    assert sum(row.tobytes() in originals for row in xa) >= 200  # the originals are all kept


def test_no_copies_is_the_data_itself(test_split) -> None:
    x, y = test_split.x_train[:10], test_split.y_train[:10]
    xa, ya = augment(x, y, Augmentation(copies=0), seed=1)
    assert xa is x and ya is y


def test_mnist_box_fits_20_pixels_and_centres_by_mass(test_split) -> None:
    small = ndimage.zoom(test_split.x_train[0].reshape(28, 28), 0.5)
    img = np.zeros((28, 28), np.float32)
    img[2 : 2 + small.shape[0], 3 : 3 + small.shape[1]] = small  # small and off-centre
    out = mnist_box(img)
    ys, xs = np.nonzero(out > 0.05)
    assert max(np.ptp(ys), np.ptp(xs)) + 1 <= 21
    cy, cx = ndimage.center_of_mass(out)
    assert abs(cy - 13.5) < 1 and abs(cx - 13.5) < 1
