"""Reading and writing IDX files (the MNIST family's format), raw or gzip-compressed.

An IDX file is a 4-byte magic number ``00 00 TT NN`` -- ``TT`` the element type,
``NN`` the number of dimensions -- then ``NN`` big-endian uint32 sizes, then the
elements, big-endian, in C order. :func:`read_idx` checks every part of that and
raises a ``ValueError`` that names the file and says what is wrong (bad magic,
unknown type code, no dimensions, truncated or over-long data, a broken gzip
stream) rather than returning a silently wrong array.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

# IDX type code -> numpy dtype (big-endian, as stored)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str: code for code, dt in IDX_DTYPES.items()}


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except EOFError as exc:
            raise ValueError(f"{path}: truncated gzip stream ({exc}); the download or copy is incomplete") from exc
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise ValueError(f"{path}: not a valid gzip file ({exc})") from exc
    return path.read_bytes()


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file into a native-endian numpy array (validated)."""
    if len(raw) < 4:
        raise ValueError(f"{name}: {len(raw)} bytes is too short for an IDX header (need at least 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{name}: bad IDX magic {raw[:4].hex()} (the first two bytes must be zero); "
                         "not an IDX file, or a compressed file without the .gz suffix")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX element type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{name}: truncated IDX header: {ndim} dimensions need {header} bytes, file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) < expected:
        raise ValueError(f"{name}: truncated IDX data: shape {dims} of {dtype.newbyteorder('=').name} needs "
                         f"{expected} bytes, file has {len(raw)} ({expected - len(raw)} missing)")
    if len(raw) > expected:
        raise ValueError(f"{name}: {len(raw) - expected} unexpected bytes after the IDX data of shape {dims} "
                         f"(file has {len(raw)} bytes, expected {expected}); corrupt or not this format")
    arr = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=dtype.itemsize > 1)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` decompressed on the fly) into a numpy array.

    Raises ``FileNotFoundError`` if it does not exist and ``ValueError`` naming
    the file and the defect if it is corrupt or truncated. uint8 data comes back
    as a read-only view of the file's bytes (no copy); convert before writing.
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    path = Path(path)
    arr = np.asarray(array)
    code = _CODES.get(arr.dtype.newbyteorder("=").str)
    if code is None:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}; use one of uint8, int8, int16, int32, float32, float64")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {arr.ndim}")
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    blob = head + np.ascontiguousarray(arr, IDX_DTYPES[code]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(blob)
    else:
        path.write_bytes(blob)
    return path
