"""Named data sets, where their files are looked for, and :func:`load_dataset`.

Every set is loaded whole into four tensors (optionally straight onto a
device): no DataLoader, no PIL, no per-sample work. Images are ``(N, C, H, W)``
float32 scaled to [0, 1] and then normalised; labels are int64.

File-backed sets (MNIST, Fashion-MNIST, EMNIST) are read from IDX files, raw or
``.gz`` (raw preferred when both exist), looked for in this order:

1. the ``root`` you pass (``--data-dir``): the files directly in it, in
   ``<root>/<set>/`` (e.g. ``<root>/fashion-mnist/``), or in torchvision's
   layout (``<root>/MNIST/raw/``, ``<root>/FashionMNIST/raw/``, ``<root>/EMNIST/raw/``);
2. ``$LIMEN_DATA``, then ``~/.cache/limen`` and ``./data``: ``<dir>/<set>/`` or
   torchvision's layout (not the bare folder: MNIST and Fashion-MNIST files
   have the same names, so a bare folder would be ambiguous);
3. for Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``
   (``apt-get install dataset-fashion-mnist``).

A set that is found nowhere raises ``FileNotFoundError`` listing every folder
looked in and how to get the files.

The embedded default, ``digits``, is scikit-learn's bundled 8x8 digits (1797
images, pixel values 0..16, input dimension 64), split deterministically and
stratified by class into 1437 training and 360 test images (each class gives
360/1797 of its images, about 20 %, rounded by largest remainder; which ones is
drawn with ``numpy.random.default_rng(0)``; see :func:`digits_split`).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .idx import parse_idx, _read_bytes

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DIGITS_SPLIT_SEED = 0
DIGITS_N_TEST = 360


@dataclasses.dataclass(frozen=True)
class _Spec:
    name: str
    files: tuple[str, str, str, str]  # train images, train labels, test images, test labels (no .gz)
    subdirs: tuple[str, ...]          # inside a root: own folder(s) and torchvision's layout
    n_classes: int
    label_offset: int = 0             # subtracted from the stored labels
    how_to_get: str = ""
    extra_dirs: tuple[Path, ...] = ()
    md5: dict | None = None           # md5 of the *decompressed* file content, by file name


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _emnist(split: str, n_classes: int, offset: int) -> _Spec:
    files = tuple(f"emnist-{split}-{part}" for part in
                  ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                   "test-images-idx3-ubyte", "test-labels-idx1-ubyte"))
    return _Spec(
        name=f"emnist-{split}", files=files, n_classes=n_classes, label_offset=offset,
        subdirs=(f"emnist-{split}", "emnist", "EMNIST/raw", "gzip", "emnist/gzip"),
        how_to_get=(
            "EMNIST is not packaged for Debian. On a machine with internet access, either\n"
            f"  python -c \"import torchvision; torchvision.datasets.EMNIST('DIR', split='{split}', download=True)\"\n"
            "(creates DIR/EMNIST/raw/), or download https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip and unzip\n"
            "it into DIR (creates DIR/gzip/); then pass --data-dir DIR or set LIMEN_DATA=DIR."),
    )


SPECS: dict[str, _Spec] = {
    "mnist": _Spec(
        name="mnist", files=_MNIST_FILES, subdirs=("mnist", "MNIST/raw"), n_classes=10,
        how_to_get=(
            "MNIST is not packaged for Debian. On a machine with internet access, either\n"
            "  python -c \"import torchvision; torchvision.datasets.MNIST('DIR', download=True)\"\n"
            "(creates DIR/MNIST/raw/), or put the four files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (e.g. from https://ossci-datasets.s3.amazonaws.com/mnist/)\n"
            "into DIR/mnist/; then pass --data-dir DIR or set LIMEN_DATA=DIR."),
    ),
    "fashion-mnist": _Spec(
        name="fashion-mnist", files=_MNIST_FILES, subdirs=("fashion-mnist", "FashionMNIST/raw"), n_classes=10,
        extra_dirs=(DEBIAN_FASHION_MNIST,),
        how_to_get=(
            "Install Debian's package (it puts the files in /usr/share/datasets/fashion-mnist):\n"
            "  apt-get install dataset-fashion-mnist\n"
            "or, without root: apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb DIR\n"
            "and pass --data-dir DIR/usr/share/datasets/fashion-mnist; or copy the four .gz files from\n"
            "https://github.com/zalandoresearch/fashion-mnist (data/fashion) into DIR/fashion-mnist/ and set LIMEN_DATA=DIR."),
        md5={
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
    ),
    "emnist-balanced": _emnist("balanced", 47, 0),
    "emnist-letters": _emnist("letters", 26, 1),
}
DATASETS: tuple[str, ...] = ("digits", *SPECS)
"""Names accepted by :func:`load_dataset`."""


@dataclasses.dataclass
class Dataset:
    """A whole data set as tensors on one device.

    ``x_*``: ``(N, C, H, W)`` float32, normalised; ``y_*``: ``(N,)`` int64 in ``0..n_classes-1``.
    ``source`` says where it was read from; ``normalization`` is the (mean, std)
    applied after scaling pixels to [0, 1].
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    source: str
    normalization: tuple[float, float]
    base_n_classes: int
    verified: bool | None = None  # True: content md5s matched; None: not checked (or no checksum known)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def input_dim(self) -> int:
        """Length of a flattened image (784 for 28x28, 64 for digits)."""
        return int(np.prod(self.image_shape))

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def to(self, device: str | torch.device) -> "Dataset":
        """A copy with all four tensors on ``device``."""
        dev = torch.device(device)
        return dataclasses.replace(self, x_train=self.x_train.to(dev), y_train=self.y_train.to(dev),
                                   x_test=self.x_test.to(dev), y_test=self.y_test.to(dev))

    def describe(self) -> dict:
        """JSON-ready summary for result records and reports."""
        return {"name": self.name, "source": self.source, "n_train": self.n_train, "n_test": self.n_test,
                "n_classes": self.n_classes, "base_n_classes": self.base_n_classes,
                "image_shape": list(self.image_shape), "normalization": list(self.normalization),
                "verified": self.verified}

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.n_train}, test={self.n_test}, classes={self.n_classes}, "
                f"image_shape={self.image_shape}, device={self.device}, source={self.source!r})")


# ----------------------------------------------------------------------------- search

def search_dirs(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Every folder, in order, where the files of data set ``name`` are looked for."""
    spec = _spec(name)
    out: list[Path] = []
    if root is not None:
        root = Path(root).expanduser()
        out += [root] + [root / s for s in spec.subdirs]
    bases = []
    if os.environ.get("LIMEN_DATA"):
        bases.append(Path(os.environ["LIMEN_DATA"]).expanduser())
    bases += [Path.home() / ".cache" / "limen", Path("data")]
    for base in bases:
        out += [base / s for s in spec.subdirs]
    out += list(spec.extra_dirs)
    seen, uniq = set(), []
    for d in out:
        if d not in seen:
            seen.add(d)
            uniq.append(d)
    return uniq


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_files(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The four IDX files of ``name`` (train images/labels, test images/labels).

    Raises ``FileNotFoundError`` listing every folder looked in, which files were
    missing where only some were found, and how to get the data.
    """
    spec = _spec(name)
    looked = []
    for folder in search_dirs(name, root):
        found = [_find_file(folder, stem) for stem in spec.files]
        if all(found):
            return found  # type: ignore[return-value]
        if any(found):
            missing = [s for s, f in zip(spec.files, found) if f is None]
            looked.append(f"  {folder}  (incomplete: missing {', '.join(missing)})")
        else:
            looked.append(f"  {folder}")
    files = ", ".join(f"{s}[.gz]" for s in spec.files)
    env = "" if os.environ.get("LIMEN_DATA") else " ($LIMEN_DATA is not set)"
    raise FileNotFoundError(
        f"data set {spec.name!r} not found: looked for {files} in these folders{env}:\n" + "\n".join(looked)
        + f"\nHow to get it:\n{spec.how_to_get}")


def _spec(name: str) -> _Spec:
    key = name.lower().replace("_", "-")
    key = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "emnist": "emnist-balanced"}.get(key, key)
    if key not in SPECS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return SPECS[key]


# ----------------------------------------------------------------------------- reading

@lru_cache(maxsize=16)
def _read_checked(path: str, mtime_ns: int, size: int, verify: bool) -> tuple[np.ndarray, str | None]:
    raw = _read_bytes(Path(path))
    digest = hashlib.md5(raw).hexdigest() if verify else None
    arr = parse_idx(raw, path)
    arr.flags.writeable = False
    return arr, digest


def _read(path: Path, verify: bool) -> tuple[np.ndarray, str | None]:
    st = path.stat()
    return _read_checked(str(path.resolve()), st.st_mtime_ns, st.st_size, verify)


def _load_idx_set(spec: _Spec, root, verify: bool):
    paths = find_files(spec.name, root)
    (xtr, dtr), (ytr, _), (xte, dte), (yte, _) = arrays = [_read(p, verify) for p in paths]
    for (arr, _), p, ndim in zip(arrays, paths, (3, 1, 3, 1)):
        if arr.dtype != np.uint8 or arr.ndim != ndim:
            raise ValueError(f"{p}: expected a {ndim}-D uint8 IDX array for {spec.name}, "
                             f"got {arr.ndim}-D {arr.dtype} of shape {arr.shape}")
    for x, y, px, py in ((xtr, ytr, paths[0], paths[1]), (xte, yte, paths[2], paths[3])):
        if x.shape[0] == 0:
            raise ValueError(f"{px} holds 0 images; a {spec.name} set needs training and test images "
                             "(the file is truncated at the source or not this data set)")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{px} has {x.shape[0]} images but {py} has {y.shape[0]} labels")
    if xtr.shape[1:] != xte.shape[1:]:
        raise ValueError(f"{paths[0]} images are {xtr.shape[1:]} but {paths[2]} images are {xte.shape[1:]}")
    verified = None
    if verify and spec.md5:
        for (arr, digest), p, stem in zip(arrays, paths, spec.files):
            want = spec.md5[stem]
            if digest != want:
                raise ValueError(f"{p}: content md5 {digest} does not match the known {spec.name} file "
                                 f"({want}); the file is corrupt or a different data set")
        verified = True
    labels = []
    for y, p in ((ytr, paths[1]), (yte, paths[3])):
        y = y.astype(np.int64) - spec.label_offset
        if y.size and (y.min() < 0 or y.max() >= spec.n_classes):
            lo, hi = int(y.min()) + spec.label_offset, int(y.max()) + spec.label_offset
            raise ValueError(f"{p}: labels range {lo}..{hi}, outside {spec.label_offset}.."
                             f"{spec.n_classes - 1 + spec.label_offset} for {spec.name}")
        labels.append(y)
    source = str(paths[0].parent.resolve())
    return (xtr[:, None], labels[0], xte[:, None], labels[1], 255.0, source, verified)


def _digits_raw() -> tuple[np.ndarray, np.ndarray, str]:
    """scikit-learn's bundled digits as (1797, 8, 8) uint8 and labels, without importing sklearn if possible."""
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as fh:
                table = np.loadtxt(fh, delimiter=",", dtype=np.float64)
            return table[:, :-1].reshape(-1, 8, 8).astype(np.uint8), table[:, -1].astype(np.int64), str(path)
    from sklearn.datasets import load_digits  # fallback: the public API
    d = load_digits()
    return d.images.astype(np.uint8), d.target.astype(np.int64), "sklearn.datasets.load_digits"


def digits_split(labels: np.ndarray, n_test: int = DIGITS_N_TEST,
                 seed: int = DIGITS_SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: (train indices, test indices), each sorted.

    Each class gives ``n_test / N`` of its images to the test set, rounded by
    largest remainder (ties to the lower class) so the test set has exactly
    ``n_test`` images; which images is drawn with ``default_rng(seed)``.
    """
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (n_test / len(labels))
    per_class = np.floor(exact).astype(int)
    short = int(n_test) - int(per_class.sum())
    order = np.lexsort((classes, -(exact - per_class)))  # largest remainder first, then class index
    per_class[order[:short]] += 1
    rng = np.random.default_rng(seed)
    test = []
    for c, k in zip(classes, per_class):
        idx = np.flatnonzero(labels == c)
        test.append(rng.permutation(idx)[:k])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


@lru_cache(maxsize=1)
def _digits() -> tuple:
    images, labels, source = _digits_raw()
    tr, te = digits_split(labels)
    for a in (images, labels):
        a.flags.writeable = False
    return (images[tr][:, None], labels[tr], images[te][:, None], labels[te], 16.0, source, None)


# ----------------------------------------------------------------------------- public

def _normalization(normalize, x_train01: torch.Tensor) -> tuple[float, float]:
    if isinstance(normalize, str):
        key = normalize.lower()
        if key == "mnist":
            return (MNIST_MEAN, MNIST_STD)
        if key == "none":
            return (0.0, 1.0)
        if key == "dataset":
            return (float(x_train01.mean()), float(x_train01.std()))
        raise ValueError(f"unknown normalize={normalize!r}; use 'mnist', 'none', 'dataset' or (mean, std)")
    try:
        mean, std = (float(v) for v in normalize)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"normalize must be 'mnist', 'none', 'dataset' or a (mean, std) pair, got {normalize!r}") from exc
    if not std > 0 or not np.isfinite(mean) or not np.isfinite(std):
        raise ValueError(f"normalize=(mean, std) needs a finite mean and std > 0, got ({mean}, {std})")
    return (mean, std)


def load_dataset(name: str = "digits", root: str | os.PathLike | None = None, n_classes: int | None = None,
                 normalize: str | Sequence[float] = "mnist", device: str | torch.device = "cpu",
                 verify: bool = False) -> Dataset:
    """Load a whole data set as tensors.

    name:       ``digits`` (embedded default), ``fashion-mnist``, ``mnist``, ``emnist-balanced``, ``emnist-letters``.
    root:       folder to look in first (see the module docstring for the search order).
    n_classes:  keep only labels ``0..K-1`` (train and test), as the reference's class truncation.
    normalize:  ``"mnist"`` (0.1307, 0.3081; the subliminal reference's choice, default, also for the other
                sets — infomorphic runs restandardise with each set's own training mean/std, as the infomorphic
                reference does), ``"none"`` (pixels in [0, 1]), ``"dataset"`` (this set's training mean/std),
                or ``(mean, std)``.
    device:     where the tensors are created (``"cpu"``, ``"cuda"``, ``"auto"``, a ``torch.device``).
    verify:     also check the decompressed files' md5 against the known content (Fashion-MNIST);
                ``Dataset.verified`` says whether that happened.

    EMNIST letters labels 1..26 become 0..25. EMNIST images are kept as stored
    (transposed relative to MNIST), like the reference code; irrelevant for MLPs.
    """
    if name.lower() == "digits":
        xtr, ytr, xte, yte, scale, source, verified = _digits()
        base_k, set_name = 10, "digits"
    else:
        spec = _spec(name)
        xtr, ytr, xte, yte, scale, source, verified = _load_idx_set(spec, root, verify)
        base_k, set_name = spec.n_classes, spec.name
    if n_classes is not None:
        if int(n_classes) != n_classes or not 2 <= n_classes <= base_k:
            raise ValueError(f"n_classes must be an integer in 2..{base_k} for {set_name}, got {n_classes!r}")
        n_classes = int(n_classes)
        keep_tr, keep_te = ytr < n_classes, yte < n_classes
        xtr, ytr, xte, yte = xtr[keep_tr], ytr[keep_tr], xte[keep_te], yte[keep_te]
        for part, y in (("training", ytr), ("test", yte)):
            if y.size == 0:
                raise ValueError(f"{set_name} from {source} has no {part} images with labels 0..{n_classes - 1} "
                                 f"(n_classes={n_classes}); keep more classes or check the label file")
    k = base_k if n_classes is None else n_classes

    from ..device import resolve_device
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a)).to(dev).to(torch.float32).div_(scale)  # np.array: writable copy

    x_train, x_test = images(xtr), images(xte)
    mean, std = _normalization(normalize, x_train)
    if (mean, std) != (0.0, 1.0):
        x_train.sub_(mean).div_(std)
        x_test.sub_(mean).div_(std)
    to_labels = lambda a: torch.from_numpy(np.array(a, np.int64)).to(dev)  # noqa: E731
    return Dataset(name=set_name, x_train=x_train, y_train=to_labels(ytr), x_test=x_test, y_test=to_labels(yte),
                   n_classes=k, source=source, normalization=(mean, std), base_n_classes=base_k, verified=verified)
