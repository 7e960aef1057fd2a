"""Build checks of the Hopper primitives (include/flashcore/sm90/) on a machine
without a GPU: tests/cuda/sm90_primitives.cu, which uses every wrapper, must
compile for sm_90a to the Hopper instructions (wgmma, TMA, mbarrier,
setmaxnreg, elect), and compile for sm_80 and plain sm_90 with none of them
(the bodies are guarded by FLASHCORE_SM90A). ptxas checks each instruction
form here; whether the kernels built on them compute the right thing is for
the GPU tests of the Hopper family (issue 11).
"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "cuda" / "sm90_primitives.cu"
INCLUDE = ROOT / "src" / "flashcore" / "csrc" / "include"

HOPPER_OPCODES = [
    r"HGMMA\.64x64x16\.F32\b",  # m64n64k16, fp16
    r"HGMMA\.64x64x16\.F32\.BF16",
    r"HGMMA\.64x128x16\.F32\b",
    r"HGMMA\.64x128x16\.F32\.BF16",
    r"UTMALDG\.4D",  # TMA load
    r"UTMASTG\.4D",  # TMA store
    r"SYNCS\.EXCH\.64",  # mbarrier.init
    r"SYNCS\.ARRIVE\.TRANS64",  # mbarrier.arrive(.expect_tx)
    r"SYNCS\.PHASECHK\.TRANS64\.TRYWAIT",  # mbarrier.try_wait.parity
    r"USETMAXREG",  # setmaxnreg
    r"\bELECT\b",
    r"WARPGROUP\.ARRIVE",  # wgmma.fence
    r"WARPGROUP\.DEPBAR",  # wgmma.wait_group
]


def _sass(nvcc, cuobjdump, arch, tmp_path):
    cubin = tmp_path / f"primitives_{arch}.cubin"
    build = subprocess.run(
        [
            nvcc,
            "-std=c++17",
            f"-arch={arch}",
            "-cubin",
            f"-I{INCLUDE}",
            str(SOURCE),
            "-o",
            str(cubin),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return subprocess.run(
        [cuobjdump, "-sass", str(cubin)], capture_output=True, text=True, check=True
    ).stdout


def test_sm90a_primitives_compile_to_hopper_instructions(nvcc, cuobjdump, tmp_path):
    sass = _sass(nvcc, cuobjdump, "sm_90a", tmp_path)
    missing = [op for op in HOPPER_OPCODES if not re.search(op, sass)]
    assert not missing, f"no {missing} in the sm_90a SASS"


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_primitives_vanish_outside_sm90a(nvcc, cuobjdump, tmp_path, arch):
    sass = _sass(nvcc, cuobjdump, arch, tmp_path)
    present = [op for op in HOPPER_OPCODES if re.search(op, sass)]
    assert not present, f"{present} in the {arch} SASS"
