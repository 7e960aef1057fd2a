import os
import shutil
from pathlib import Path

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _find_cuda_tool(name: str) -> str:
    candidates = [shutil.which(name)]
    cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    candidates.append(str(Path(cuda_home) / "bin" / name))
    if name == "cuobjdump":
        try:  # triton (a torch dependency on Linux) ships one
            import triton

            candidates.append(str(Path(triton.__file__).parent / "backends/nvidia/bin/cuobjdump"))
        except ImportError:
            pass
    for c in candidates:
        if c and Path(c).is_file():
            return c
    raise AssertionError(f"{name} not found (looked at {candidates}); install the CUDA toolkit")


@pytest.fixture(scope="session")
def cuobjdump() -> str:
    """Path of a cuobjdump (the CUDA toolkit's, or the one triton ships)."""
    return _find_cuda_tool("cuobjdump")


@pytest.fixture(scope="session")
def nvcc() -> str:
    """Path of nvcc; skips where there is none, except in CI and release checks
    (FLASHCORE_EXPECT_RELEASE_ARCHS=1), where the toolkit must be present."""
    try:
        return _find_cuda_tool("nvcc")
    except AssertionError:
        if os.environ.get("FLASHCORE_EXPECT_RELEASE_ARCHS") == "1":
            raise
        pytest.skip("nvcc not found (CUDA toolkit not installed)")


def load_benchmark(name: str):
    """benchmarks/NAME.py imported as a module (the scripts are not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
