"""Data sets for the experiments (IDX/torchvision layouts, Fashion-MNIST, embedded digits).

Stable API::

    from limen.verify.data import load_dataset, Dataset, read_idx
    ds = load_dataset("digits" | "fashion-mnist" | "mnist" | "emnist-balanced" | "emnist-letters",
                      root=None, n_classes=None, normalize="mnist", device="cpu", verify=False)
    ds.x_train (N, C, H, W) float32, ds.y_train int64, ds.x_test, ds.y_test,
    ds.n_classes, ds.image_shape, ds.input_dim, ds.name, ds.source, ds.describe()

Where files are looked for, how digits is split, and the error behaviour are
described in :mod:`limen.verify.data.sets`; the IDX format in :mod:`limen.verify.data.idx`.
"""

from .idx import read_idx, write_idx
from .sets import (DATASETS, DEBIAN_FASHION_MNIST, MNIST_MEAN, MNIST_STD, Dataset, digits_split, find_files,
                   load_dataset, search_dirs)

__all__ = ["DATASETS", "DEBIAN_FASHION_MNIST", "MNIST_MEAN", "MNIST_STD", "Dataset", "digits_split", "find_files",
           "load_dataset", "read_idx", "search_dirs", "write_idx"]
