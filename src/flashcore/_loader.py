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


_C_API = None


def c_api():
    """The extension's plain C entry points (host/c_api.cpp) through ctypes: the
    argument contracts, the config heuristics, the config catalog, the
    backward's workspace size and the Hopper forward's tile order. No GPU
    needed."""
    global _C_API
    if _C_API is None:
        if LOAD_ERROR is not None:
            raise RuntimeError(f"flashcore: {LOAD_ERROR}")
        import ctypes

        lib = ctypes.CDLL(str(LIBRARY_PATH))  # the handle torch already opened
        i64p = ctypes.POINTER(ctypes.c_int64)
        lib.flashcore_check_fwd_args.restype = ctypes.c_int
        lib.flashcore_check_fwd_args.argtypes = [
            i64p, i64p, i64p, ctypes.c_double, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
            ctypes.c_int, ctypes.c_double, ctypes.c_int, ctypes.c_int64, ctypes.c_char_p,
            ctypes.c_int,
        ]  # fmt: skip
        lib.flashcore_choose_fwd_config.restype = ctypes.c_int
        lib.flashcore_choose_fwd_config.argtypes = [ctypes.c_int64] * 4 + [ctypes.c_int] * 8
        lib.flashcore_num_fwd_configs.restype = ctypes.c_int
        lib.flashcore_num_fwd_configs.argtypes = []
        lib.flashcore_fwd_config_desc.restype = ctypes.c_int
        lib.flashcore_fwd_config_desc.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, i64p]
        lib.flashcore_check_fwd_train_args.restype = ctypes.c_int
        lib.flashcore_check_fwd_train_args.argtypes = [
            i64p, i64p, i64p, ctypes.c_double, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
            ctypes.c_int, ctypes.c_double, ctypes.c_int, ctypes.c_int, ctypes.c_int64,
            ctypes.c_char_p, ctypes.c_int,
        ]  # fmt: skip
        lib.flashcore_check_bwd_args.restype = ctypes.c_int
        lib.flashcore_check_bwd_args.argtypes = [
            i64p, i64p, i64p, i64p, i64p, i64p, i64p, ctypes.c_int, ctypes.c_int,
            ctypes.c_double, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int,
            ctypes.c_double, ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
            ctypes.c_char_p, ctypes.c_int,
        ]  # fmt: skip
        lib.flashcore_choose_bwd_config.restype = ctypes.c_int
        lib.flashcore_choose_bwd_config.argtypes = (
            [ctypes.c_int64] * 5 + [ctypes.c_int] * 7 + [ctypes.c_int64]
        )
        lib.flashcore_choose_bwd_gqa_split.restype = ctypes.c_int
        lib.flashcore_choose_bwd_gqa_split.argtypes = [ctypes.c_int64] * 5 + [ctypes.c_int] * 7
        lib.flashcore_num_bwd_configs.restype = ctypes.c_int
        lib.flashcore_num_bwd_configs.argtypes = []
        lib.flashcore_bwd_config_desc.restype = ctypes.c_int
        lib.flashcore_bwd_config_desc.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, i64p]
        lib.flashcore_bwd_workspace_elems.restype = ctypes.c_int64
        lib.flashcore_bwd_workspace_elems.argtypes = [ctypes.c_int64] * 5 + [ctypes.c_int] * 3
        lib.flashcore_sm90_tile_index.restype = ctypes.c_int
        lib.flashcore_sm90_tile_index.argtypes = [ctypes.c_int] * 5 + [ctypes.POINTER(ctypes.c_int)]
        lib.flashcore_sm90_lpt_group.restype = ctypes.c_int
        lib.flashcore_sm90_lpt_group.argtypes = [
            ctypes.c_int64, ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.c_int64,
        ]  # fmt: skip
        lib.flashcore_sm90_tail_split.restype = None
        lib.flashcore_sm90_tail_split.argtypes = [ctypes.c_int] * 3 + [ctypes.POINTER(ctypes.c_int)]
        lib.flashcore_set_sm90_persistent_masked.restype = ctypes.c_int
        lib.flashcore_set_sm90_persistent_masked.argtypes = [ctypes.c_int]
        _C_API = lib
    return _C_API
