"""The Hopper primitives (include/flashcore/sm90/), the groundwork of the
Hopper family (issue 11, docs/design/hopper_fwd.md).

Without a GPU: tests/cuda/sm90_primitives.cu, which uses every wrapper, must
compile for sm_90a to the Hopper instructions (wgmma, TMA, mbarrier,
setmaxnreg, elect) and for sm_80 and plain sm_90 to none of them (the bodies
are guarded by FLASHCORE_SM90A); ptxas checks each instruction form. The
stage-1 program (tests/cuda/sm90_stage1.cu: TMA loads, S = Q K^T and O = P V
by wgmma on one 64 x 64 tile) must build.

On an sm_90 GPU: the stage-1 program's S, O and T = V^T K (the backward's dQ
form, both operands MN-major) against torch, for fp16 and bf16, which checks
the swizzled layouts, the descriptors, the accumulator and A-fragment layouts
and the mbarrier/TMA handshake.
"""

import ctypes
import re
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "cuda" / "sm90_primitives.cu"
STAGE1 = ROOT / "tests" / "cuda" / "sm90_stage1.cu"
INCLUDE = ROOT / "src" / "flashcore" / "csrc" / "include"

HOPPER_OPCODES = [
    r"HGMMA\.64x64x16\.F32\b",  # m64n64k16, fp16
    r"HGMMA\.64x64x16\.F32\.BF16",
    r"HGMMA\.64x128x16\.F32\b",
    r"HGMMA\.64x128x16\.F32\.BF16",
    r"HGMMA\.64x64x16\.F32\S*\s+R\d+, gdesc\[UR\d+\]\.tnspA\.tnspB",  # both operands MN-major
    r"UTMALDG\.4D",  # TMA load
    r"UBLKCP\.S\.G",  # 1-D bulk copy global -> shared
    r"UTMASTG\.4D",  # TMA store
    r"SYNCS\.EXCH\.64",  # mbarrier.init
    r"SYNCS\.ARRIVE\.TRANS64",  # mbarrier.arrive(.expect_tx)
    r"SYNCS\.PHASECHK\.TRANS64\.TRYWAIT",  # mbarrier.try_wait.parity
    r"USETMAXREG",  # setmaxnreg
    r"\bELECT\b",
    r"WARPGROUP\.ARRIVE",  # wgmma.fence
    r"WARPGROUP\.DEPBAR",  # wgmma.wait_group
]


def _nvcc(nvcc, *args) -> None:
    build = subprocess.run(
        [nvcc, "-std=c++17", f"-I{INCLUDE}", *args], capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stderr


def _sass(nvcc, cuobjdump, arch, tmp_path):
    cubin = tmp_path / f"primitives_{arch}.cubin"
    _nvcc(nvcc, f"-arch={arch}", "-cubin", str(SOURCE), "-o", str(cubin))
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


def _build_stage1(nvcc, out: Path) -> Path:
    _nvcc(
        nvcc,
        "-arch=sm_90a",
        "-shared",
        "-Xcompiler",
        "-fPIC",
        "-diag-suppress",
        "177",
        str(STAGE1),
        "-o",
        str(out),
    )
    return out


def test_stage1_builds(nvcc, tmp_path):
    lib = _build_stage1(nvcc, tmp_path / "libstage1.so")
    assert lib.stat().st_size > 0


@pytest.fixture(scope="module")
def stage1(nvcc, tmp_path_factory):
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs an sm_90 GPU (H100 / H200)")
    lib = ctypes.CDLL(str(_build_stage1(nvcc, tmp_path_factory.mktemp("sm90") / "libstage1.so")))
    fn = lib.flashcore_sm90_stage1
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 6
    return fn


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_stage1_tma_wgmma_tile(stage1, dtype):
    torch.manual_seed(0 if dtype == torch.float16 else 1)
    q, k, v = (torch.randn(64, 64, device="cuda").to(dtype) for _ in range(3))
    s_out = torch.full((64, 64), float("nan"), device="cuda")
    o_out = torch.full((64, 64), float("nan"), device="cuda")
    t_out = torch.full((64, 64), float("nan"), device="cuda")
    torch.cuda.synchronize()
    rc = stage1(
        int(dtype == torch.bfloat16),
        q.data_ptr(),
        k.data_ptr(),
        v.data_ptr(),
        s_out.data_ptr(),
        o_out.data_ptr(),
        t_out.data_ptr(),
    )
    assert rc == 0, f"stage 1 returned {rc} (cudaError_t, or 1000 + CUresult of the tensor map)"
    # S: products of 16-bit values are exact in fp32; only the summation order differs.
    torch.testing.assert_close(s_out, q.float() @ k.float().T, rtol=1e-4, atol=1e-3)
    # O from the kernel's own S, rounded to the input dtype as the kernel does.
    p = s_out.to(dtype).float()
    torch.testing.assert_close(o_out, p @ v.float(), rtol=1e-4, atol=1e-2)
    # T = V^T K with both operands read MN-major (the sm90 backward's dQ = dS K,
    # dS stored [key][query]): a wrong M-major A descriptor shows up here alone.
    torch.testing.assert_close(t_out, v.float().T @ k.float(), rtol=1e-4, atol=1e-3)


# ---- the built extension's Hopper family --------------------------------------


def _sass_by_function(cuobjdump, library: str) -> dict[tuple[str, str], str]:
    """{(arch, mangled function name): its SASS} for every kernel in every cubin."""
    text = subprocess.run(
        [cuobjdump, "-sass", library], capture_output=True, text=True, check=True
    ).stdout
    out: dict[tuple[str, str], str] = {}
    arch = None
    for chunk in re.split(r"\n(?=\s*(?:code for|Function :))", text):
        m = re.match(r"\s*code for (sm_\w+)", chunk)
        if m:
            arch = m.group(1)
            continue
        m = re.match(r"\s*Function : (\S+)", chunk)
        if m and arch:
            out[(arch, m.group(1))] = chunk
    return out


def test_extension_hopper_kernels_hold_wgmma_and_tma_only_for_sm90a(cuobjdump):
    # Guards the build, not the math: the heuristic sends large calls on H100/H200
    # to these kernels, so an sm_90a image whose bodies compiled empty (the
    # FLASHCORE_SM90A guard off) would return uninitialized memory.
    import flashcore

    info = flashcore.build_info()
    sass = _sass_by_function(cuobjdump, info["library"])
    hopper = {key: body for key, body in sass.items() if "4sm9010fwd_kernel" in key[1]}
    archs = {arch for arch, _ in hopper}
    assert archs == {a for a in info["sass_archs"]}, (archs, info["sass_archs"])
    if "sm_90a" not in info["sass_archs"]:
        pytest.skip("this build has no sm_90a target")
    # Per Hopper config: 2 dtypes x {unmasked, masked} x {softcap off, on}
    from flashcore import _debug

    n_configs = sum(cfg["sm90"] for cfg in _debug.configs())
    assert n_configs >= 2, _debug.configs()
    full = {name: body for (arch, name), body in hopper.items() if arch == "sm_90a"}
    assert len(full) == 8 * n_configs, sorted(full)
    for name, body in full.items():
        for op in (r"HGMMA\.64x128x16", r"UTMALDG\.4D", r"SYNCS\.PHASECHK", r"USETMAXREG"):
            assert re.search(op, body), f"{op} missing from {name}"
    for (arch, name), body in hopper.items():
        if arch != "sm_90a":
            assert not re.search(r"HGMMA|UTMALDG", body), f"{name} on {arch} is not empty"


def _key_loop(body: str) -> list[str]:
    """The instructions of a Hopper forward kernel's key loop: the smallest loop
    (a backward branch and its target) holding a tile's 64 exponentials a thread
    and at least one GEMM batch."""
    ins = [
        (int(m.group(1), 16), m.group(2))
        for m in re.finditer(r"/\*([0-9a-f]{4,6})\*/\s+([^;]*);", body)
    ]
    best: list[str] | None = None
    for addr, op in ins:
        m = re.search(r"\bBRA (0x[0-9a-f]+)", op)
        if not m or int(m.group(1), 16) >= addr:
            continue
        loop = [o for a, o in ins if int(m.group(1), 16) <= a <= addr]
        big = sum("MUFU.EX2" in o for o in loop) >= 64 and sum("HGMMA" in o for o in loop) >= 8
        if big and (best is None or len(loop) < len(best)):
            best = loop
    assert best is not None, "no key loop found"
    return best


def test_extension_hopper_forward_key_loops_run_on_the_uniform_datapath(cuobjdump):
    # Guards v27's +4-10% (benchmarks/NOTES.md): the wgmma descriptors and the
    # K/V ring stage are warp-uniform, and ptxas keeps them in uniform registers
    # only where it can prove it (the warpgroup index through a shuffle, the
    # persistent kernels' tile conditions through votes). A change that loses
    # that shows up as R2UR moves before the HGMMAs, or a BSSY divergence
    # region around the K/V waits, inside the key loop.
    import flashcore

    info = flashcore.build_info()
    if "sm_90a" not in info["sass_archs"]:
        pytest.skip("this build has no sm_90a target")
    sass = _sass_by_function(cuobjdump, info["library"])
    kernels = {n: b for (a, n), b in sass.items() if a == "sm_90a" and "4sm9010fwd_kernel" in n}
    assert kernels
    for name, body in kernels.items():
        loop = _key_loop(body)
        # Before v27: 32-48 R2UR a key loop and a BSSY in the persistent ones;
        # since, 0 (1 in the masked kernels: the key-tile index for the mask).
        moves = sum("R2UR" in op for op in loop)
        regions = sum(op.lstrip().startswith("BSSY") for op in loop)
        assert moves <= 2 and regions == 0, (name, moves, regions)
