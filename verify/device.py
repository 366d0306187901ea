"""Device selection shared by every experiment and benchmark."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a :class:`torch.device`.

    ``auto`` picks CUDA when available, else the CPU. Asking for CUDA on a
    machine without it raises a ``ValueError`` that says so.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA device; use --device cpu or auto")
    return dev


def device_name(dev: torch.device) -> str:
    """Human-readable name of the hardware behind ``dev`` (GPU model or 'cpu')."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return "cpu"


def synchronize(dev: torch.device) -> None:
    """Wait for queued kernels on ``dev`` (for timing only; never call per training step)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
