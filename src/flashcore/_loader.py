"""Loads the compiled extension, which registers the torch.ops.flashcore.* ops.

The extension is a plain shared library on the LibTorch stable ABI (no Python
module init), so it is loaded with torch.ops.load_library. Loading needs no GPU.
A failed load is kept and reported when an op is called, so `import flashcore`
always works (for build_info() and error messages).
"""

from __future__ import annotations

from pathlib import Path

import torch

_MIN_TORCH = (2, 10)


def _torch_version_tuple(version: str) -> tuple[int, int]:
    parts = version.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def check_torch_version(version: str) -> None:
    """Raises ImportError when `version` is older than the stable ABI we target."""
    if _torch_version_tuple(version) < _MIN_TORCH:
        raise ImportError(
            f"flashcore requires torch >= {_MIN_TORCH[0]}.{_MIN_TORCH[1]} (its kernels use the "
            f"LibTorch stable ABI of torch {_MIN_TORCH[0]}.{_MIN_TORCH[1]}), "
            f"but torch {version} is installed"
        )


check_torch_version(torch.__version__)


def _find_library() -> Path | None:
    here = Path(__file__).parent
    for pattern in ("_C.abi3.so", "_C.*.so", "_C.so", "_C*.pyd"):
        found = sorted(here.glob(pattern))
        if found:
            return found[0]
    return None


LIBRARY_PATH: Path | None = _find_library()
LOAD_ERROR: str | None = None

if LIBRARY_PATH is None:
    LOAD_ERROR = (
        "the compiled extension flashcore/_C*.so is missing; install a built wheel or run "
        "`pip install --no-build-isolation .`"
    )
else:
    try:
        torch.ops.load_library(str(LIBRARY_PATH))
    except OSError as exc:  # missing CUDA runtime, incompatible torch, ...
        LOAD_ERROR = f"loading {LIBRARY_PATH.name} failed: {exc}"
        if "libcudart" in str(exc):
            LOAD_ERROR += (
                f". This flashcore wheel is built for another CUDA major version than "
                f"this torch ({torch.__version__}, CUDA {torch.version.cuda}); install the "
                "flashcore wheel built for your torch's CUDA (see ci/README.md)"
            )
