"""Builds flashcore's CUDA extension: one abi3 (cp310) binary on the LibTorch stable ABI.

Environment:
  FLASHCORE_CUDA_ARCHS  SASS targets, ';'-separated (default "80;86;89;90a"); narrow it
                        for quick development builds, e.g. FLASHCORE_CUDA_ARCHS=90a.
  FLASHCORE_PTX_ARCH    PTX target embedded for forward compatibility (default "90";
                        empty for none).
  FLASHCORE_PTXAS_V     set to 1 to print ptxas' register/spill report per kernel.
  FLASHCORE_LINEINFO    set to 1 to embed source-line info (for ncu's source view).
  CUDA_HOME             CUDA toolkit root (e.g. /usr/local/cuda).
"""

import os
import re
import subprocess
from pathlib import Path

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension

ROOT = Path(__file__).parent
PKG = ROOT / "src" / "flashcore"
CSRC = PKG / "csrc"

# The stable-ABI surface the extension may use: torch 2.10's.
TORCH_TARGET = "2.10"
TORCH_TARGET_HEX = "0x020a000000000000"


def _archs() -> tuple[list[str], str]:
    sass = [a.strip() for a in os.environ.get("FLASHCORE_CUDA_ARCHS", "80;86;89;90a").split(";")]
    sass = [a for a in sass if a]
    ptx = os.environ.get("FLASHCORE_PTX_ARCH", "90").strip()
    for a in sass + ([ptx] if ptx else []):
        # "90a": sm_90 with the Hopper-only features (wgmma, setmaxnreg) that the
        # sm90 kernel family needs; its SASS runs on every compute capability 9.0 GPU.
        if not re.fullmatch(r"\d+a?", a) or int(a.rstrip("a")) < 80:
            raise SystemExit(
                f"flashcore needs sm_80 or newer (mma.sync m16n8k16, cp.async); got arch {a!r}"
            )
    if ptx.endswith("a"):
        raise SystemExit(
            f"FLASHCORE_PTX_ARCH must be a plain arch (PTX of an 'a' target "
            f"runs on that GPU only); got {ptx!r}"
        )
    return sass, ptx


def _cuda_version() -> str:
    nvcc = Path(CUDA_HOME or "/usr/local/cuda") / "bin" / "nvcc"
    try:
        out = subprocess.run(
            [str(nvcc), "--version"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return "unknown"
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else "unknown"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _write_build_config(sass: list[str], ptx: str, cuda: str) -> None:
    """Records what this build holds, for flashcore.build_info() and the C++ error path."""
    import torch

    archs = [f"sm_{a}" for a in sass] + ([f"compute_{ptx}"] if ptx else [])
    _write_if_changed(
        CSRC / "build_config.h",
        "// Written by setup.py at build time; do not edit.\n#pragma once\n"
        f'#define FLASHCORE_ARCH_LIST "{", ".join(archs)}"\n'
        # Whether the Hopper wgmma/TMA family has code in this build (host/heuristics).
        f"#define FLASHCORE_HAS_SM90A {int('90a' in sass)}\n",
    )
    text = (
        "# Written by setup.py at build time; do not edit.\n"
        f"SASS_ARCHS = {tuple(f'sm_{a}' for a in sass)!r}\n"
        f"PTX_ARCH = {('compute_' + ptx) if ptx else None!r}\n"
        f"CUDA_VERSION = {cuda!r}\n"
        f"TORCH_TARGET = {TORCH_TARGET!r}\n"
        f"BUILT_WITH_TORCH = {torch.__version__.split('+')[0]!r}\n"
    )
    _write_if_changed(PKG / "_build_config.py", text)


sass, ptx = _archs()
cuda_version = _cuda_version()
_write_build_config(sass, ptx, cuda_version)

gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in sass]
if ptx:
    gencode.append(f"-gencode=arch=compute_{ptx},code=compute_{ptx}")

common = ["-O3", "-std=c++17", f"-DTORCH_TARGET_VERSION={TORCH_TARGET_HEX}", "-DUSE_CUDA"]
nvcc_flags = common + gencode
if os.environ.get("FLASHCORE_LINEINFO") == "1":
    # Source lines for Nsight Compute; adds ~5 MB of debug sections per kernel file and arch.
    nvcc_flags.append("-lineinfo")
if os.environ.get("FLASHCORE_PTXAS_V") == "1":
    nvcc_flags.append("-Xptxas=-v")

# The op (torch side), the torch-free host code (contract, heuristic, C entry
# points, launch switch) and one kernel translation unit per (dtype, tile
# head-dim range), so a parallel build keeps every core busy.
SOURCES = [
    "api/ops.cpp",
    "host/checks.cpp",
    "host/heuristics.cpp",
    "host/c_api.cpp",
    "host/run.cu",
] + sorted(str(p.relative_to(CSRC)) for p in (CSRC / "inst").glob("*.cu"))

setup(
    ext_modules=[
        CUDAExtension(
            name="flashcore._C",
            sources=[str((CSRC / f).relative_to(ROOT)) for f in SOURCES],
            include_dirs=[str(CSRC / "include"), str(CSRC)],
            extra_compile_args={"cxx": common, "nvcc": nvcc_flags},
            py_limited_api=True,
        )
    ],
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
