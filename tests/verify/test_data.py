"""Data sets: IDX reading/validation, search order and layouts, digits split, normalisation, class truncation."""

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from limen.verify.data import (DEBIAN_FASHION_MNIST, MNIST_MEAN, MNIST_STD, Dataset, digits_split, find_files,
                               load_dataset, read_idx, search_dirs, write_idx)
from limen.verify.data import sets

MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def emnist_stems(split):
    return tuple(f"emnist-{split}-{p}" for p in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                  "test-images-idx3-ubyte", "test-labels-idx1-ubyte"))


def make_set(folder: Path, stems=MNIST_STEMS, *, gz=False, n_train=30, n_test=12, n_classes=10, offset=0,
             seed=0, shape=(6, 5)):
    """Write a small IDX data set; returns the arrays (train x, train y, test x, test y)."""
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
              (np.arange(n_train) % n_classes + offset).astype(np.uint8),
              rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
              (np.arange(n_test) % n_classes + offset).astype(np.uint8))
    for stem, arr in zip(stems, arrays):
        write_idx(folder / (stem + (".gz" if gz else "")), arr)
    return arrays


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $LIMEN_DATA, an empty home and working directory, and no Debian folder: only what a test writes."""
    monkeypatch.delenv("LIMEN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no-debian"
    monkeypatch.setitem(sets.SPECS, "fashion-mnist", dataclasses.replace(sets.SPECS["fashion-mnist"],
                                                                           extra_dirs=(missing,)))
    return tmp_path


# ----------------------------------------------------------------------------- IDX format

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip(tmp_path, dtype, suffix):
    arr = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / f"a-idx3{suffix}", arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, arr)


def test_idx_header_is_the_published_format(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([3, 1, 4], np.uint8))
    assert path.read_bytes() == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 3, 1, 4])


def _write(tmp_path, blob, name="bad-idx"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


GOOD = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))


@pytest.mark.parametrize("blob, message", [
    (b"\x00\x00", "too short"),
    (b"\x1f\x8b\x08\x02" + GOOD[4:], "bad IDX magic"),
    (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 9]), "unknown IDX element type code 0x07"),
    (bytes([0, 0, 0x08, 0]), "0 dimensions"),
    (bytes([0, 0, 0x08, 3, 0, 0, 0, 2]), "truncated IDX header"),
    (GOOD[:-1], "truncated IDX data"),
    (GOOD[:12], "truncated IDX data"),
    (GOOD + b"\x00", "unexpected bytes"),
])
def test_corrupt_idx_raises_naming_the_file(tmp_path, blob, message):
    p = _write(tmp_path, blob)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(p)
    assert str(p) in str(info.value)


def test_truncated_and_fake_gzip_raise(tmp_path):
    full = gzip.compress(GOOD * 1)
    p = _write(tmp_path, full[: len(full) // 2], "cut-idx.gz")
    with pytest.raises(ValueError, match="truncated gzip") as info:
        read_idx(p)
    assert str(p) in str(info.value)
    with pytest.raises(ValueError, match="not a valid gzip"):
        read_idx(_write(tmp_path, GOOD, "raw-named-idx.gz"))
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


def test_write_idx_rejects_unstorable_dtype(tmp_path):
    with pytest.raises(ValueError, match="cannot store dtype"):
        write_idx(tmp_path / "x", np.zeros(3, np.uint16))


# ----------------------------------------------------------------------------- search and layouts

@pytest.mark.parametrize("gz", [False, True])
def test_flat_root_raw_and_gz(isolated, gz):
    xtr, ytr, xte, yte = make_set(isolated / "flat", gz=gz)
    ds = load_dataset("mnist", root=isolated / "flat", normalize="none")
    assert isinstance(ds, Dataset) and ds.name == "mnist" and ds.n_classes == 10
    assert ds.x_train.shape == (30, 1, 6, 5) and ds.x_train.dtype == torch.float32
    assert ds.y_train.dtype == torch.int64 and ds.image_shape == (1, 6, 5) and ds.input_dim == 30
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), xtr / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test.numpy(), yte)
    assert ds.source == str((isolated / "flat").resolve())


@pytest.mark.parametrize("name, layout, stems", [
    ("mnist", "MNIST/raw", MNIST_STEMS),
    ("fashion-mnist", "FashionMNIST/raw", MNIST_STEMS),
    ("emnist-balanced", "EMNIST/raw", emnist_stems("balanced")),
    ("fashion-mnist", "fashion-mnist", MNIST_STEMS),
    ("emnist-balanced", "gzip", emnist_stems("balanced")),
])
def test_torchvision_and_named_layouts_under_root(isolated, name, layout, stems):
    make_set(isolated / "r" / layout, stems, gz=True, n_classes=10)
    ds = load_dataset(name, root=isolated / "r")
    assert ds.source == str((isolated / "r" / layout).resolve())
    assert ds.n_train == 30 and ds.n_test == 12


def test_limen_data_env_then_standard_places(isolated, monkeypatch):
    make_set(isolated / "home" / ".cache" / "limen" / "mnist", seed=1)
    ds = load_dataset("mnist")
    assert ds.source == str((isolated / "home" / ".cache" / "limen" / "mnist").resolve())
    make_set(isolated / "env" / "MNIST" / "raw", seed=2)
    monkeypatch.setenv("LIMEN_DATA", str(isolated / "env"))
    assert load_dataset("mnist").source == str((isolated / "env" / "MNIST" / "raw").resolve())
    make_set(isolated / "explicit", seed=3)
    assert load_dataset("mnist", root=isolated / "explicit").source == str((isolated / "explicit").resolve())
    dirs = search_dirs("mnist", root=isolated / "explicit")
    assert dirs.index(isolated / "explicit") < dirs.index(isolated / "env" / "mnist") \
        < dirs.index(isolated / "home" / ".cache" / "limen" / "mnist") < dirs.index(Path("data") / "mnist")


def test_bare_standard_folder_is_not_searched(isolated, monkeypatch):
    """MNIST and Fashion-MNIST share file names, so $LIMEN_DATA's own folder is not a match."""
    make_set(isolated / "env")
    monkeypatch.setenv("LIMEN_DATA", str(isolated / "env"))
    with pytest.raises(FileNotFoundError):
        load_dataset("mnist")


def test_debian_folder_is_searched_for_fashion_mnist():
    assert DEBIAN_FASHION_MNIST in search_dirs("fashion-mnist")
    assert DEBIAN_FASHION_MNIST not in search_dirs("mnist")


def test_raw_preferred_over_gz(isolated):
    make_set(isolated / "r", seed=1, gz=True)
    make_set(isolated / "r", seed=2, gz=False)
    paths = find_files("mnist", isolated / "r")
    assert all(p.suffix != ".gz" for p in paths)


def test_missing_data_set_lists_places_and_how_to_get_it(isolated):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion-mnist", root=isolated / "mine")
    msg = str(info.value)
    for d in search_dirs("fashion-mnist", root=isolated / "mine"):
        assert str(d) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "$LIMEN_DATA is not set" in msg
    with pytest.raises(FileNotFoundError, match="EMNIST/raw") as info:
        load_dataset("emnist-letters")
    assert "torchvision.datasets.EMNIST" in str(info.value) and "split='letters'" in str(info.value)


def test_incomplete_folder_is_reported(isolated):
    make_set(isolated / "r")
    (isolated / "r" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete: missing t10k-labels-idx1-ubyte"):
        load_dataset("mnist", root=isolated / "r")


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="unknown data set 'cifar-100'"):
        load_dataset("cifar-100")


# ----------------------------------------------------------------------------- content checks

def test_emnist_letters_labels_shift_to_zero(isolated):
    _, ytr, _, _ = make_set(isolated / "r", emnist_stems("letters"), n_classes=26, offset=1, n_train=52)
    ds = load_dataset("emnist-letters", root=isolated / "r")
    assert ds.n_classes == 26 and int(ds.y_train.min()) == 0 and int(ds.y_train.max()) == 25
    np.testing.assert_array_equal(ds.y_train.numpy(), ytr.astype(np.int64) - 1)


def test_labels_out_of_range_raise(isolated):
    make_set(isolated / "r", n_classes=12)
    with pytest.raises(ValueError, match="labels range 0..11, outside 0..9"):
        load_dataset("mnist", root=isolated / "r")


def test_mismatched_counts_and_wrong_kinds_raise(isolated):
    make_set(isolated / "a")
    write_idx(isolated / "a" / "train-labels-idx1-ubyte", np.zeros(29, np.uint8))
    with pytest.raises(ValueError, match="30 images but .* 29 labels"):
        load_dataset("mnist", root=isolated / "a")
    make_set(isolated / "b")
    write_idx(isolated / "b" / "t10k-images-idx3-ubyte", np.zeros((12, 30), np.uint8))
    with pytest.raises(ValueError, match="expected a 3-D uint8"):
        load_dataset("mnist", root=isolated / "b")


@pytest.mark.parametrize("part, stem", [("train", "train-images-idx3-ubyte"), ("test", "t10k-images-idx3-ubyte")])
def test_a_set_without_images_is_an_error_naming_the_file(isolated, part, stem):
    make_set(isolated / "r", **{f"n_{part}": 0})  # a valid IDX file of shape (0, 6, 5)
    with pytest.raises(ValueError, match="holds 0 images") as info:
        load_dataset("mnist", root=isolated / "r")
    assert str((isolated / "r" / stem).resolve()) in str(info.value)


def test_class_truncation_that_keeps_no_image_is_an_error(isolated):
    make_set(isolated / "r", n_classes=1, offset=5)  # every label is 5
    with pytest.raises(ValueError, match="no training images with labels 0..2 \\(n_classes=3\\)"):
        load_dataset("mnist", root=isolated / "r", n_classes=3)


def test_corrupt_file_in_a_set_names_it(isolated):
    make_set(isolated / "r", gz=True)
    p = isolated / "r" / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(ValueError) as info:
        load_dataset("mnist", root=isolated / "r")
    assert str(p.resolve()) in str(info.value)


def test_verify_checks_content_md5(isolated):
    make_set(isolated / "r")
    with pytest.raises(ValueError, match="does not match the known fashion-mnist file"):
        load_dataset("fashion-mnist", root=isolated / "r", verify=True)
    ds = load_dataset("mnist", root=isolated / "r", verify=True)  # no checksum known: loads, says so
    assert ds.verified is None


def test_class_truncation_and_normalisation(isolated):
    xtr, ytr, _, _ = make_set(isolated / "r")
    ds = load_dataset("mnist", root=isolated / "r", n_classes=3)
    keep = ytr < 3
    assert ds.n_classes == 3 and ds.base_n_classes == 10 and ds.n_train == int(keep.sum())
    assert set(ds.y_train.tolist()) == {0, 1, 2} and set(ds.y_test.tolist()) == {0, 1, 2}
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), (xtr[keep] / 255.0 - MNIST_MEAN) / MNIST_STD, atol=1e-6)
    assert ds.normalization == (MNIST_MEAN, MNIST_STD)
    dn = load_dataset("mnist", root=isolated / "r", normalize="dataset")
    assert abs(float(dn.x_train.mean())) < 1e-5 and abs(float(dn.x_train.std()) - 1) < 1e-4
    dt = load_dataset("mnist", root=isolated / "r", normalize=(0.5, 0.25))
    np.testing.assert_allclose(dt.x_test[:, 0].numpy(), (_read_test(isolated) / 255.0 - 0.5) / 0.25, atol=1e-6)
    for bad in (1, 11, 2.5):
        with pytest.raises(ValueError, match="n_classes must be an integer in 2..10"):
            load_dataset("mnist", root=isolated / "r", n_classes=bad)
    for bad in ("zscore", (0.1, 0.0), "x"):
        with pytest.raises(ValueError, match="normalize"):
            load_dataset("mnist", root=isolated / "r", normalize=bad)


def _read_test(root):
    return read_idx(root / "r" / "t10k-images-idx3-ubyte")


# ----------------------------------------------------------------------------- digits

def test_digits_default_split_and_scale():
    ds = load_dataset()
    assert ds.name == "digits" and ds.n_train == 1437 and ds.n_test == 360
    assert ds.image_shape == (1, 8, 8) and ds.input_dim == 64 and ds.n_classes == 10
    raw = load_dataset(normalize="none")
    assert float(raw.x_train.min()) == 0.0 and float(raw.x_train.max()) == 1.0
    assert torch.allclose(ds.x_train, (raw.x_train - MNIST_MEAN) / MNIST_STD, atol=1e-6)
    counts = torch.bincount(ds.y_test, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37  # stratified: ~20 % of each class
    again = load_dataset()
    assert torch.equal(again.x_test, ds.x_test) and torch.equal(again.y_train, ds.y_train)


def test_digits_split_is_exact_and_disjoint():
    labels = np.repeat(np.arange(10), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    tr, te = digits_split(labels)
    assert len(tr) == 1437 and len(te) == 360 and not set(tr) & set(te)
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(1797))
    tr2, te2 = digits_split(labels, seed=1)
    assert len(te2) == 360 and not np.array_equal(te, te2)


def test_digits_matches_sklearn():
    sk = pytest.importorskip("sklearn.datasets")
    d = sk.load_digits()
    tr, te = digits_split(d.target)
    ds = load_dataset(normalize="none")
    np.testing.assert_array_equal(ds.y_train.numpy(), d.target[tr])
    np.testing.assert_allclose(ds.x_test[:, 0].numpy(), d.images[te] / 16.0, rtol=1e-6)


def test_device_argument_and_to():
    ds = load_dataset(device="cpu", n_classes=4)
    assert ds.device.type == "cpu" and ds.to("cpu").n_train == ds.n_train
    assert ds.describe()["n_classes"] == 4


@pytest.mark.gpu
def test_loads_straight_onto_cuda():
    ds = load_dataset(device="cuda")
    assert ds.x_train.is_cuda and ds.y_test.is_cuda


# ----------------------------------------------------------------------------- the real Debian files

@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist(monkeypatch):
    monkeypatch.delenv("LIMEN_DATA", raising=False)
    ds = load_dataset("fashion-mnist", root=DEBIAN_FASHION_MNIST, verify=True)
    assert ds.verified is True and ds.source == str(DEBIAN_FASHION_MNIST.resolve())
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10
    raw_mean = float(load_dataset("fashion-mnist", root=DEBIAN_FASHION_MNIST, normalize="none").x_train.mean())
    assert abs(raw_mean * 255 - 72.94) < 0.01
