"""CPU tests of the backward-kernel catalog and choose_bwd_config (host/bwd_configs.h,
host/heuristics.cpp) through the plain C entry points (host/c_api.cpp). No GPU needed.

The kernels themselves are tested on the GPU by tests/test_bwd.py.
"""

import ctypes
import re
import subprocess
from fractions import Fraction

import pytest

from flashcore import _loader

KiB = 1024
# (sm_count, cc_major, cc_minor, max dynamic shared memory per block with opt-in)
DEVICES = {
    "H100/H200": (132, 9, 0, 227 * KiB),
    "A100": (108, 8, 0, 163 * KiB),
    "RTX3090": (82, 8, 6, 99 * KiB),
    "L4": (58, 8, 9, 99 * KiB),
    "V100": (80, 7, 0, 96 * KiB),
}
SHAPES = [(1, 1, 1, 1), (1, 8, 512, 512), (2, 4, 1000, 3000), (8, 16, 4096, 4096)]


def _lib():
    lib = _loader.c_api()
    lib.flashcore_choose_bwd_config.restype = ctypes.c_int
    lib.flashcore_choose_bwd_config.argtypes = (
        [ctypes.c_int64] * 5 + [ctypes.c_int] * 7 + [ctypes.c_int64]
    )
    lib.flashcore_num_bwd_configs.restype = ctypes.c_int
    lib.flashcore_num_bwd_configs.argtypes = []
    lib.flashcore_bwd_config_desc.restype = ctypes.c_int
    lib.flashcore_bwd_config_desc.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int64),
    ]
    return lib


def _configs():
    lib = _lib()
    out = []
    for i in range(lib.flashcore_num_bwd_configs()):
        name = ctypes.create_string_buffer(64)
        vals = (ctypes.c_int64 * 6)()
        assert lib.flashcore_bwd_config_desc(i, name, len(name), vals) == 0
        keys = ("head_dim", "block_m", "block_n", "warps", "smem_bytes", "sm90")
        out.append({"name": name.value.decode(), **dict(zip(keys, (int(x) for x in vals)))})
        out[-1]["sm90"] = bool(out[-1]["sm90"])
    return out


def _sm80_configs():
    """The mma.sync backward configs (the ones the heuristic chooses from)."""
    return [c for c in _configs() if not c["sm90"]]


def _choose(shape, d, device, *, hkv=None, tma_ok=True, det=False, split=-1, dev=None):
    """choose_bwd_config for shape (batch, heads_q, seqlen_q, seqlen_k), head dim d
    and a device of DEVICES (or the numbers `dev`); hkv defaults to heads_q."""
    b, hq, sq, sk = shape
    numbers = dev if dev is not None else DEVICES[device]
    hkv = hq if hkv is None else hkv
    i = _lib().flashcore_choose_bwd_config(
        b, hq, hkv, sq, sk, d, *numbers, int(tma_ok), int(det), split
    )
    return _configs()[i]["name"] if i >= 0 else None


def _built_with_sm90a():
    import flashcore

    return "sm_90a" in flashcore.build_info()["sass_archs"]


def _sm90_expected(shape, d, dev, *, hkv=None, tma_ok=True, det=False, split=-1):
    """The Hopper config the rule (host/heuristics.cpp use_sm90_bwd) gives, or None:
    a build with sm_90a, compute capability 9.0 with the config's shared memory,
    tma_ok, the default mode, no forced split over 1, and a grid of batch x kv
    heads x 128-key blocks of at least 48% of a wave (sm_count)."""
    b, hq, _, sk = shape
    hkv = hq if hkv is None else hkv
    sms, major, minor, smem = dev
    name = "sm90_bwd_d64" if d <= 64 else "sm90_bwd_d128" if d <= 128 else None
    if name is None or not _built_with_sm90a() or (major, minor) != (9, 0):
        return None
    cfg = next(c for c in _configs() if c["name"] == name)
    blocks = b * hkv * -(-sk // cfg["block_n"])
    if cfg["smem_bytes"] > smem or not tma_ok or det or split > 1 or 100 * blocks < 48 * sms:
        return None
    return name


def test_bwd_catalog():
    cfgs = _configs()
    names = ["bwd_d64", "bwd_d64_s", "bwd_d128", "bwd_d128_s", "bwd_d256"]
    sm90_names = ["sm90_bwd_d64", "sm90_bwd_d128"]
    assert [c["name"] for c in cfgs] == names + sm90_names, cfgs
    for c in cfgs:
        assert 128 % c["block_m"] == 0 and c["block_n"] % 64 == 0, c
        assert c["sm90"] == (c["name"] in sm90_names), c
        if c["sm90"]:
            # the Hopper family: 128 keys over two consumer warpgroups plus a
            # producer warpgroup, within sm_90's 227 KB; query blocks of 128
            # rows at head dim 64, 64 at 128 (design section 7)
            assert c["block_n"] == 128 and c["warps"] == 12, c
            assert c["block_m"] * c["head_dim"] == 8192, c
            assert c["smem_bytes"] <= 227 * KiB, c
            continue
        # sm_80's opt-in limit; the _s configs sm_86 / sm_89's
        assert c["smem_bytes"] <= (99 if c["name"].endswith("_s") else 163) * KiB, c
        assert c["warps"] == 8, c
    lib = _lib()
    buf = (ctypes.c_int64 * 6)()
    assert lib.flashcore_bwd_config_desc(len(cfgs), None, 0, buf) == 1
    assert lib.flashcore_bwd_config_desc(-1, None, 0, buf) == 1


@pytest.mark.parametrize("device", ["H100/H200", "A100"])
@pytest.mark.parametrize("shape", SHAPES)
def test_choose_bwd_config_narrowest_tile(device, shape):
    # The mma.sync configs: A100 always; H100 / H200 where the Hopper rule does
    # not hold (deterministic, inputs TMA cannot read, or its own rule: the
    # Hopper tests below).
    for d in range(8, 257, 8):
        expected = "bwd_d64" if d <= 64 else "bwd_d128" if d <= 128 else "bwd_d256"
        for kw in ({"det": True}, {"tma_ok": False}, {"split": 2}, {}):
            want = _sm90_expected(shape, d, DEVICES[device], **kw) or expected
            assert _choose(shape, d, device, **kw) == want, (device, shape, d, kw)
        if device == "A100":
            assert _choose(shape, d, device) == expected, (device, shape, d)


@pytest.mark.parametrize("device", ["RTX3090", "L4"])
@pytest.mark.parametrize("shape", SHAPES)
def test_choose_bwd_config_99kb_devices(device, shape):
    # Nothing at head dims 136..256 fits 99 KB yet.
    for d in range(8, 257, 8):
        expected = "bwd_d64_s" if d <= 64 else "bwd_d128_s" if d <= 128 else None
        assert _choose(shape, d, device) == expected, (device, shape, d)


SM90_BWD_SKIP = pytest.mark.skipif(
    not _built_with_sm90a(), reason="this build has no sm_90a: the Hopper backward is never picked"
)


@SM90_BWD_SKIP
@pytest.mark.parametrize(
    "shape, hkv, d, expected",
    [
        # The measured rows (benchmarks/NOTES.md v13, v16: 480-560 TFLOP/s against
        # mma.sync's 258-285): grids of 1024, 4096 and 4096 blocks.
        ((4, 16, 2048, 2048), 16, 64, "sm90_bwd_d64"),
        ((4, 16, 2048, 2048), 16, 128, "sm90_bwd_d128"),
        ((8, 16, 4096, 4096), 16, 64, "sm90_bwd_d64"),
        ((8, 16, 4096, 4096), 16, 128, "sm90_bwd_d128"),
        ((2, 16, 16384, 16384), 16, 64, "sm90_bwd_d64"),
        ((2, 16, 16384, 16384), 16, 128, "sm90_bwd_d128"),
        # Narrower head dims take the tile of their width.
        ((8, 16, 4096, 4096), 16, 40, "sm90_bwd_d64"),
        ((8, 16, 4096, 4096), 16, 96, "sm90_bwd_d128"),
        # Head dims over 128 have no Hopper config.
        ((8, 16, 4096, 4096), 16, 136, "bwd_d256"),
        ((8, 16, 4096, 4096), 16, 256, "bwd_d256"),
        # The GQA row: 8 kv heads x 64 key blocks = 512 blocks.
        ((1, 32, 8192, 8192), 8, 128, "sm90_bwd_d128"),
        # The GPT training step: 8 x 2 kv heads x 4 key blocks = 64 blocks, 48% of
        # 132 SMs (measured: 205 against mma.sync's 192 TFLOP/s), the bound.
        ((8, 8, 512, 512), 2, 128, "sm90_bwd_d128"),
        ((8, 8, 512, 512), 2, 64, "sm90_bwd_d64"),
        # The grid counts kv heads, not query heads: 1 x 1 x 64 = 64 blocks for
        # MQA at 8K, 2048 without GQA.
        ((1, 32, 8192, 8192), 1, 128, "sm90_bwd_d128"),
        ((1, 32, 4096, 4096), 1, 128, "bwd_d128"),
        ((1, 32, 4096, 4096), 32, 128, "sm90_bwd_d128"),
        # At the bound (4 x 2 x 8 = 64 blocks; 3 x 3 x 8 = 72 with a partial last
        # key block) and one block below it (3 x 3 x 7 = 63).
        ((4, 4, 1000, 1024), 2, 128, "sm90_bwd_d128"),
        ((3, 3, 1000, 897), 3, 64, "sm90_bwd_d64"),
        ((3, 3, 1000, 896), 3, 128, "bwd_d128"),
        ((11, 12, 1, 128), 1, 64, "bwd_d64"),  # 11 x 1 x 1 = 11 blocks
        ((1, 1, 1, 1), 1, 64, "bwd_d64"),
    ],
)
def test_choose_bwd_config_hopper_on_h100_h200(shape, hkv, d, expected):
    assert _choose(shape, d, "H100/H200", hkv=hkv) == expected
    # seqlen_q does not enter the rule (the grid is over key blocks).
    assert _choose((shape[0], shape[1], 7, shape[3]), d, "H100/H200", hkv=hkv) == expected


@SM90_BWD_SKIP
@pytest.mark.parametrize("d", [64, 128])
def test_choose_bwd_config_hopper_needs_every_condition(d):
    shape, sm90 = (8, 16, 4096, 4096), f"sm90_bwd_d{d}"
    mma = f"bwd_d{d}"
    assert _choose(shape, d, "H100/H200") == sm90
    # The deterministic mode exists only for the mma.sync configs (the Hopper
    # ones add dQ by atomics).
    assert _choose(shape, d, "H100/H200", det=True) == mma
    # Inputs TMA cannot read (unaligned rows, broadcast strides) fall back
    # rather than raise.
    assert _choose(shape, d, "H100/H200", tma_ok=False) == mma
    assert _choose(shape, d, "H100/H200", tma_ok=False, det=True) == mma
    # A forced GQA split over 1 (the debug override) needs the mma.sync split
    # kernels; a forced 1 is the Hopper config's own.
    assert _choose(shape, d, "H100/H200", hkv=4, split=2) == mma
    assert _choose(shape, d, "H100/H200", hkv=4, split=1) == sm90
    assert _choose(shape, d, "H100/H200", hkv=4) == sm90
    # Compute capability 9.0 only, with the config's shared memory.
    cfg = next(c for c in _configs() if c["name"] == sm90)
    assert _choose(shape, d, None, dev=(132, 9, 0, cfg["smem_bytes"])) == sm90
    small = (132, 9, 0, cfg["smem_bytes"] - 1)
    assert _choose(shape, d, None, dev=small) == _choose(shape, d, None, dev=small, det=True)
    assert _choose(shape, d, None, dev=small) not in (sm90, None)
    for major, minor in ((10, 0), (12, 0), (8, 0), (8, 9)):
        assert _choose(shape, d, None, dev=(132, major, minor, 227 * KiB)) == mma, (major, minor)
    # 48% of a wave: the same grid (4096 blocks) on bigger GPUs.
    assert _choose(shape, d, None, dev=(8533, 9, 0, 227 * KiB)) == sm90
    assert _choose(shape, d, None, dev=(8534, 9, 0, 227 * KiB)) == mma


@pytest.mark.parametrize("device", list(DEVICES))
def test_choose_bwd_config_picks_the_hopper_family_only_by_its_rule(device):
    # Exhaustive over head dims, shapes, GQA and the flags: a Hopper config
    # exactly where the rule holds (never off compute capability 9.0, never in
    # a build without sm_90a), else the mma.sync choice pinned above.
    sm90 = {c["name"] for c in _configs() if c["sm90"]}
    assert sm90
    dev = DEVICES[device]
    picked = 0
    for shape in SHAPES + [(1, 32, 8192, 8192), (16, 32, 4096, 4096), (8, 8, 512, 512)]:
        for hkv in {shape[1], 1, 2}:
            for d in range(8, 257, 8):
                for kw in ({}, {"det": True}, {"tma_ok": False}, {"split": 2}):
                    got = _choose(shape, d, device, hkv=hkv, **kw)
                    want = _sm90_expected(shape, d, dev, hkv=hkv, **kw)
                    if want is not None:
                        assert got == want, (device, shape, hkv, d, kw, got)
                        picked += 1
                    else:
                        assert got not in sm90, (device, shape, hkv, d, kw, got)
    on_hopper = device == "H100/H200" and _built_with_sm90a()
    assert (picked > 0) == on_hopper, (device, picked)


def test_choose_bwd_config_none_where_nothing_fits():
    # sm_70 has no mma.sync m16n8k16; 16 KB of shared memory fits no config.
    for d in (8, 64, 128, 256):
        assert _choose((2, 8, 1024, 1024), d, "V100") is None, d
        assert _choose((2, 8, 1024, 1024), d, None, dev=(10, 8, 0, 16 * KiB)) is None, d
        # nor on compute capability 9.0 with that little (the Hopper configs neither)
        assert _choose((2, 8, 1024, 1024), d, None, dev=(10, 9, 0, 16 * KiB)) is None, d


# Largest dynamic shared memory per block of each SASS target (arch_smem_limit).
ARCH_SMEM = {"sm_80": 163 * KiB, "sm_86": 99 * KiB, "sm_89": 99 * KiB, "sm_90a": 227 * KiB}


def _sass_bodies(cuobjdump, library):
    """{(arch, mangled kernel name): its SASS lines} of every cubin in library."""
    text = subprocess.run(
        [cuobjdump, "-sass", library], capture_output=True, text=True, check=True
    ).stdout
    bodies: dict[tuple[str, str], list[str]] = {}
    arch = name = None
    for line in text.splitlines():
        if m := re.match(r"\s*arch = (sm_\w+)", line):
            # a new cubin: the lines up to its first Function belong to no kernel
            arch, name = m.group(1), None
        elif m := re.match(r"\s*Function : (\S+)", line):
            name = m.group(1)
            bodies[(arch, name)] = []
        elif name is not None:
            bodies[(arch, name)].append(line)
    return bodies


def test_extension_bwd_kernels_are_built_where_they_fit(cuobjdump):
    # Guards the build, not the math: every backward main kernel holds tensor-core
    # code and dQ reductions on the targets whose shared memory fits its config
    # (float4 reductions on sm_90a), and compiles empty on the others, which
    # run_bwd refuses to launch.
    import flashcore

    info = flashcore.build_info()
    bodies = _sass_bodies(cuobjdump, info["library"])
    by_shape = {(c["head_dim"], c["block_m"], c["block_n"]): c for c in _sm80_configs()}
    seen = set()
    for (arch, fn), lines in bodies.items():
        # the mma.sync main kernels (the Hopper ones, flashcore::sm90::bwd_kernel,
        # are the next test's)
        if not fn.startswith("_ZN9flashcore10bwd_kernel") or arch not in ARCH_SMEM:
            continue
        dims = tuple(int(x) for x in re.findall(r"Li(\d+)E", fn)[:3])
        cfg = by_shape[dims]
        # template flags kHasMask, kSoftcap, kAligned16, kComputeDq, kGqaSplit:
        # kComputeDq is false in the deterministic mode's builds, which add no
        # dQ partials
        flags = re.findall(r"Lb([01])E", fn)
        compute_dq = flags[-2] == "1"
        seen.add((arch, cfg["name"], compute_dq, flags[-1] == "1"))
        body = "\n".join(lines)
        if cfg["smem_bytes"] <= ARCH_SMEM[arch]:
            assert re.search(r"\bHMMA\.16816\.F32", body), f"{fn} on {arch} has no mma"
            red = r"REDG?\.E\.ADD\.F32x4" if arch == "sm_90a" else r"REDG?\.E\.ADD\.F32\b"
            if compute_dq:
                assert re.search(red, body), f"{fn} on {arch} has no {red}"
            else:
                assert not re.search(r"\b(RED|ATOM)", body), f"{fn} on {arch} has atomics"
        else:
            assert not re.search(r"HMMA", body), f"{fn} on {arch} is not empty"
    built = {a for a in info["sass_archs"] if a in ARCH_SMEM}
    want = {
        (a, c["name"], dq, split)
        for a in built
        for c in _sm80_configs()
        for dq in (False, True)
        for split in (False, True)
    }
    assert seen == want, sorted(seen)
    # The GQA group split: every config has its split main kernels (the last
    # template flag, kGqaSplit), and each element type its ordered dK / dV reduce.
    for arch in built:
        split = {
            tuple(int(x) for x in re.findall(r"Li(\d+)E", fn)[:3])
            for (a, fn) in bodies
            if a == arch
            and fn.startswith("_ZN9flashcore10bwd_kernel")
            and fn.endswith("ELb1EEEvNS_9BwdParamsEb")
        }
        assert split == set(by_shape), (arch, sorted(split))
        reduce_types = {
            "bf16" if "bfloat16" in fn else "fp16"
            for (a, fn) in bodies
            if a == arch and "21bwd_dkv_reduce_kernel" in fn
        }
        assert reduce_types == {"fp16", "bf16"}, (arch, reduce_types)


def test_extension_bwd_dq_kernels_have_no_atomics(cuobjdump):
    # The deterministic mode's dQ kernel (sm80/bwd_dq_kernel.cuh): tensor-core
    # code and no atomics or reductions on every target its tile width's
    # smallest main config fits, one build per tile head dim there.
    import flashcore

    info = flashcore.build_info()
    bodies = _sass_bodies(cuobjdump, info["library"])
    smallest = {}
    for c in _sm80_configs():
        smallest[c["head_dim"]] = min(smallest.get(c["head_dim"], 1 << 30), c["smem_bytes"])
    seen = set()
    for (arch, fn), lines in bodies.items():
        if "13bwd_dq_kernel" not in fn or arch not in ARCH_SMEM:
            continue
        d = int(re.findall(r"Li(\d+)E", fn)[0])
        seen.add((arch, d))
        body = "\n".join(lines)
        assert not re.search(r"\b(RED|ATOM)", body), f"{fn} on {arch} has atomics"
        if smallest[d] <= ARCH_SMEM[arch]:
            assert re.search(r"\bHMMA\.16816\.F32", body), f"{fn} on {arch} has no mma"
    built = {a for a in info["sass_archs"] if a in ARCH_SMEM}
    assert seen == {(a, d) for a in built for d in smallest}, sorted(seen)


# HGMMA shapes of the Hopper backward: S^T and dP^T are 64 keys x block M
# queries, dV and dK 64 keys x head dim, the dQ part 64 x 64; block M x head
# dim is 128 x 64 or 64 x 128, so both tile widths use both shapes.
SM90_BWD_HGMMA = {"64x64x16", "64x128x16"}


def test_extension_sm90_bwd_kernels_are_hopper_code(cuobjdump):
    # Guards the build, not the math (tests/test_bwd.py runs them on an H100/H200):
    # in the sm_90a cubin every Hopper backward main kernel (2 dtypes x 2 tile
    # head dims x {unmasked, masked} x {softcap}, and the forced GQA split's
    # builds without softcap) holds wgmma (HGMMA, the dQ
    # GEMM's with both operands transposed: dS stored [key][query], K [key][d]),
    # TMA tile loads (UTMALDG), the statistics copied by the consumers
    # themselves (LDGSTS, then a named barrier: BAR.SYNC) and no bulk copies
    # (UBLKCP: no statistics refill ordered by an mbarrier, which racecheck
    # does not follow), the float4 dQ reductions, setmaxnreg
    # and mbarrier waits, and no local memory
    # (no spills: ptxas' register report is the launch cap, not the consumers'
    # 240, so the SASS is the check). On every other target the body is empty.
    import flashcore

    info = flashcore.build_info()
    bodies = _sass_bodies(cuobjdump, info["library"])
    dims = {(c["head_dim"], c["block_m"]) for c in _configs() if c["sm90"]}
    seen = set()
    for (arch, fn), lines in bodies.items():
        if not fn.startswith("_ZN9flashcore4sm9010bwd_kernel"):
            continue
        d, bm = (int(x) for x in re.findall(r"Li(\d+)E", fn)[:2])
        mask, softcap, split = (f == "1" for f in re.findall(r"Lb([01])E", fn)[-3:])
        dtype = "bf16" if "bfloat16" in fn else "fp16"
        seen.add((arch, d, bm, mask, softcap, split, dtype))
        body = "\n".join(lines)
        if arch != "sm_90a":
            assert not re.search(r"HGMMA|UTMALDG|\bRED", body), f"{fn} on {arch} is not empty"
            continue
        shapes = set(re.findall(r"HGMMA\.(\d+x\d+x16)\.F32", body))
        assert shapes == SM90_BWD_HGMMA, (fn, shapes)
        assert re.search(r"HGMMA\.64x64x16\.F32\S*\s.*tnspA\.tnspB", body), f"{fn}: no dQ GEMM"
        for op in (r"UTMALDG\.4D", r"LDGSTS\.E\.BYPASS\.128", r"BAR\.SYNC", r"REDG?\.E\.ADD\.F32x4",
                   r"USETMAXREG", r"SYNCS\.PHASECHK\.TRANS64\.TRYWAIT",
                   r"FENCE\.VIEW\.ASYNC\.S"):  # fmt: skip
            assert re.search(op, body), f"{fn} on {arch} has no {op}"
        assert not re.search(r"UBLKCP", body), f"{fn} on {arch} stages the statistics"
        assert not re.search(r"\b(LDL|STL)\b", body), f"{fn} on {arch} uses local memory (spills)"
    built = set(info["sass_archs"])
    want = {
        (a, d, bm, mask, softcap, split, dtype)
        for a in built
        for d, bm in dims
        for mask in (False, True)
        for softcap, split in ((False, False), (True, False), (False, True))
        for dtype in ("fp16", "bf16")
    }
    assert seen == want, sorted(seen ^ want)


# ---- the GQA group split (choose_bwd_gqa_split; docs/design/backward.md §5) ----


def _split(b, hq, hkv, sq, sk, d, device, config=None, softcap=False):
    config = config or _choose((b, hq, sq, sk), d, device, hkv=hkv)
    names = [c["name"] for c in _configs()]
    lib = _loader.c_api()
    return lib.flashcore_choose_bwd_gqa_split(
        b, hq, hkv, sq, sk, d, *DEVICES[device], names.index(config), int(softcap)
    )


@pytest.mark.parametrize(
    "device,shape,expected",
    [
        # The GPT training step: 8 x 2 kv heads x 4 key blocks of 128 = 64 blocks
        # on 132 SMs (the Hopper config's where it is built; this is mma.sync's
        # split). G = 2 is one wave of 128 blocks, half the work each (0.5);
        # G = 4 two waves of a quarter (0.5, a tie: the smaller G). Measured:
        # G = 1 / 2 / 4 took 182 / 113 / 125 us (NOTES v12).
        ("H100/H200", (8, 8, 2, 512, 512, 128), 2),
        ("H100/H200", (8, 8, 2, 512, 512, 64), 2),  # bwd_d64: 128 keys too
        ("H100/H200", (8, 8, 2, 1024, 1024, 128), 1),  # 128 blocks: one wave already
        # 256 and 512 blocks, and the GQA row (8 kv heads x 64 key blocks
        # = 512): grids of a wave or more, the Hopper config in a build with
        # sm_90a; the model gives 1 (2 waves = 4 / 2 = 8 / 4).
        ("H100/H200", (8, 8, 2, 2048, 2048, 128), 1),
        ("H100/H200", (8, 8, 2, 4096, 4096, 128), 1),
        ("H100/H200", (1, 32, 8, 8192, 8192, 128), 1),
        # MQA (1, 32/1, 2048): 16 blocks; 8 parts are 128 blocks, one wave (1/8);
        # 16 and 32 parts tie with it (2 / 16, 4 / 32).
        ("H100/H200", (1, 32, 1, 2048, 2048, 128), 8),
        ("H100/H200", (1, 32, 1, 2048, 2048, 256), 4),  # bwd_d256: 64 keys, 32 blocks
        # Without GQA there is nothing to split, however small the grid.
        ("H100/H200", (1, 4, 4, 128, 128, 64), 1),
        ("H100/H200", (1, 1, 1, 1, 1, 8), 1),
        # A100, 108 SMs: 64 blocks; G = 2 is 2 waves (1.0, no gain), G = 4 3 waves (0.75).
        ("A100", (8, 8, 2, 512, 512, 128), 4),
        # 99 KB GPUs: bwd_d128_s's 64-key blocks double the grid to 128.
        ("RTX3090", (8, 8, 2, 512, 512, 128), 4),  # 82 SMs: 2, 4 / 2, 7 / 4 waves
        ("L4", (8, 8, 2, 512, 512, 128), 4),  # 58 SMs: 3, 5 / 2, 9 / 4 waves
        # Divisors only: 6 heads per kv head split into 1, 2, 3 or 6 parts.
        ("H100/H200", (6, 12, 2, 1024, 1024, 128), 6),  # 96 blocks: 1, 2/2, 3/3, 5/6 waves
        ("H100/H200", (4, 12, 2, 1024, 1024, 128), 2),  # 64 blocks: 1, 1/2, 2/3, 3/6 waves
    ],
)
def test_choose_bwd_gqa_split(device, shape, expected):
    # The split of the mma.sync config of the width (the deterministic mode's:
    # never a Hopper one); the heuristic's own pick splits the same way, also
    # where it is a Hopper config (from 48% of a wave on H100 / H200 in a build
    # with sm_90a, the GPT step's 64 blocks included: 128-key blocks like the
    # mma.sync configs of these rows; NOTES v19). With softcap a Hopper config
    # has no split build: 1.
    b, hq, hkv, sq, sk, d = shape
    mma = _choose((b, hq, sq, sk), d, device, hkv=hkv, det=True)
    assert _split(*shape, device, mma) == expected
    assert _split(*shape, device, mma, softcap=True) == expected
    chosen = _choose((b, hq, sq, sk), d, device, hkv=hkv)
    assert _split(*shape, device) == expected
    assert _split(*shape, device, softcap=True) == (1 if chosen.startswith("sm90") else expected)


@pytest.mark.parametrize("device", ["H100/H200", "A100", "RTX3090", "L4"])
def test_choose_bwd_gqa_split_minimizes_waves_per_part(device):
    # The model: one block per SM, so waves(G) = ceil(blocks * G / SMs), and a
    # part does 1/G of the group's work; the smallest G of the least waves / G.
    sms = DEVICES[device][0]
    for b in (1, 2, 8):
        for hkv, q_per_kv in ((1, 1), (1, 8), (2, 4), (2, 6), (4, 16), (8, 4)):
            for sk in (1, 100, 512, 2049, 8192):
                for d in (64, 128):
                    shape = (b, hkv * q_per_kv, hkv, 300, sk, d)
                    config = _choose((b, hkv * q_per_kv, 300, sk), d, device, hkv=hkv)
                    g = _split(*shape, device, config)
                    block_n = next(c for c in _configs() if c["name"] == config)["block_n"]
                    blocks = b * hkv * -(-sk // block_n)
                    divisors = [x for x in range(1, q_per_kv + 1) if q_per_kv % x == 0]
                    cost = {x: Fraction(-(-blocks * x // sms), x) for x in divisors}
                    best = min(cost.values())
                    assert g == min(x for x in divisors if cost[x] == best), (shape, g, cost)


@pytest.mark.parametrize("name", ["sm90_bwd_d64", "sm90_bwd_d128"])
def test_choose_bwd_gqa_split_for_the_hopper_family(name):
    # The GPT step's 64 blocks: two parts (NOTES v19: 1.25-1.32x); MQA on 16
    # blocks: 8 parts (one wave); MHA: nothing to split. With softcap never
    # (the Hopper split has no softcap build).
    for shape, g in (
        ((8, 8, 2, 512, 512, 64), 2),
        ((1, 32, 1, 2048, 2048, 64), 8),
        ((1, 4, 4, 128, 128, 64), 1),
    ):
        assert _split(*shape, "H100/H200", name) == g, shape
        assert _split(*shape, "H100/H200", name, softcap=True) == 1, shape


def test_choose_bwd_gqa_split_is_one_for_an_invalid_config():
    lib = _loader.c_api()
    for config in (-1, len(_configs())):
        assert (
            lib.flashcore_choose_bwd_gqa_split(
                8, 8, 2, 512, 512, 128, 132, 9, 0, 227 * KiB, config, 0
            )
            == 1
        )
