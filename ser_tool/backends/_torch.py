"""Small torch/transformers helpers shared by the backends that run PyTorch models.

Only backend modules import this file, so torch is imported at module level here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ser_tool.errors import BackendError, ConfigError, Hint, InvalidAudioError, SERError

__all__ = [
    "as_waveform_batch",
    "cpu_default_creation_ops",
    "forward_errors",
    "load_kwargs",
    "resolve_device",
    "torch_threads",
    "transformers_major",
]

_DEVICE_RE = re.compile(r"^(cpu|auto|mps|cuda(?::(\d+))?)$")


def resolve_device(device: str | None) -> torch.device:
    """Turn a user's device string ("cpu", "cuda", "cuda:1", "mps", "auto") into a usable torch.device.

    "auto" picks CUDA when it is available and the CPU otherwise. Asking for a device this machine
    does not have is a ConfigError, not a silent fallback: the user asked for speed they will not get.
    """
    text = (device or "cpu").strip().lower()
    match = _DEVICE_RE.match(text)
    if match is None:
        raise ConfigError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' (N = GPU index), 'mps' or 'auto'")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(
                "device 'mps' was requested but this PyTorch build has no Apple GPU support; run on the CPU",
                setting="device", value="cpu",
            )
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} was requested but PyTorch sees no CUDA GPU (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'none'}); install a CUDA build of torch that matches your driver, "
            "or run on the CPU", setting="device", value="cpu",
        )
    index = match.group(2)
    if index is not None and int(index) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {device!r} was requested but only {torch.cuda.device_count()} CUDA GPU(s) are visible; "
            "use 'cuda:0' .. 'cuda:N-1' or check CUDA_VISIBLE_DEVICES"
        )
    return torch.device(text)


@contextmanager
def forward_errors(what: str) -> Iterator[None]:
    """Translate anything a model raises while running into BackendError (original kept as __cause__).

    `what` names the model in the message, e.g. "hf model 'superb/wav2vec2-base-superb-er'".
    Errors that are already SERErrors pass through unchanged.
    """
    try:
        yield
    except SERError:
        raise
    except torch.cuda.OutOfMemoryError as e:
        raise BackendError(
            f"{what} ran out of GPU memory; analyse shorter audio or fewer windows at once, or run on the CPU",
            hints=(Hint("batch_size"), Hint("device", "cpu")),
        ) from e
    except Exception as e:  # noqa: BLE001 - every library failure becomes one error type, cause kept
        raise BackendError(
            f"{what} failed while running ({type(e).__name__}: {e}); the checkpoint may not match this "
            "backend's input format, or the input is unusual. Try another backend or model, and report it if "
            "it persists", hints=(Hint("backend"), Hint("model")),
        ) from e


@contextmanager
def cpu_default_creation_ops() -> Iterator[None]:
    """Make torch.logspace/linspace create CPU tensors when the caller names no device.

    transformers >= 5 always builds a model on the meta device before loading its weights. A
    constructor that turns a creation op into Python numbers (`[int(k) for k in torch.logspace(...)]`,
    as MERaLiON-SER-v1's remote code does) then fails, because meta tensors have no data.
    transformers itself patches only torch.linspace during that step (initialization.py,
    meta_device_safe_creation_ops). Calls that pass an explicit device are left alone; the
    originals are restored on exit, also on error.
    """
    originals = {name: getattr(torch, name) for name in ("logspace", "linspace")}

    def cpu_default(original: Any) -> Any:
        def creation_op(*args: Any, **kwargs: Any) -> torch.Tensor:
            kwargs.setdefault("device", "cpu")
            return original(*args, **kwargs)

        return creation_op

    _refresh_device_constructors()
    try:
        for name, original in originals.items():
            setattr(torch, name, cpu_default(original))
        yield
    finally:
        for name, original in originals.items():
            setattr(torch, name, original)


def _refresh_device_constructors() -> None:
    """Rebuild torch's cached set of device-aware creation functions from the real functions.

    `with torch.device(...)` only moves calls of the functions in that set, and torch builds it
    once (lru_cache) on first use. Were it built while a creation op is patched - by us or by
    transformers' own linspace patch - it would hold the wrapper, and for the rest of the process
    `with torch.device("cuda"): torch.logspace(...)` would silently give CPU tensors. Building it
    now, before anything is patched, keeps the real functions in it. Private torch API: skipped if
    it is not there.
    """
    try:
        from torch.utils import _device

        _device._device_constructors.cache_clear()
        _device._device_constructors()
    except (ImportError, AttributeError):
        pass


def transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".", 1)[0])


def load_kwargs() -> dict[str, Any]:
    """Keyword arguments for `from_pretrained` that load float32 weights on the CPU first.

    float32 because half precision is slow or unsupported on CPUs and checkpoints may be stored in
    fp16; the model is moved to the device afterwards. `dtype` replaced `torch_dtype` in
    transformers 4.56.
    """
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return {key: torch.float32}


def as_waveform_batch(
    waveforms: Sequence[np.ndarray], *, sample_rate: int, max_seconds: float | None, what: str
) -> list[np.ndarray]:
    """Check a batch against the backend contract and return it as contiguous 1-D float32 arrays."""
    batch: list[np.ndarray] = []
    for i, w in enumerate(waveforms):
        a = np.asarray(w)
        if a.ndim != 1:
            raise InvalidAudioError(
                f"waveform {i} has shape {a.shape}; {what} takes mono 1-D waveforms (mix channels down first)"
            )
        if a.size == 0:
            raise InvalidAudioError(f"waveform {i} is empty; drop empty segments before calling the model")
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.all(np.isfinite(a)):
            raise InvalidAudioError(f"waveform {i} contains NaN or infinite samples; the audio is corrupt")
        if max_seconds is not None and a.size > max_seconds * sample_rate + 1:
            raise BackendError(
                f"waveform {i} lasts {a.size / sample_rate:.2f} s but {what} takes at most {max_seconds:g} s "
                "in one piece; split longer audio into windows before calling the model"
            )
        batch.append(a)
    return batch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch intra-op CPU threads, then restore the count it had (None: leave it).

    Backends run each forward pass inside this, so a thread count belongs to the backend that was
    asked for it, not to the process: loading or running one model never changes the threads of
    another model or of the host program. Setting the count costs well under a microsecond.
    """
    if n is not None and n < 1:
        raise ConfigError(f"threads must be at least 1, got {n}")
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
