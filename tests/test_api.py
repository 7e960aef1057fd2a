"""CPU tests: import, registration, the argument contract, fake-tensor inference,
the kernel-config catalog and the dispatch heuristic, build info.

None of these need a GPU. Validation is exercised on fake CUDA tensors
(FakeTensorMode), which carry device/dtype/shape/strides but no memory, so the
errors come from the same C++ contract the op runs (through the fake
implementations).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import flashcore
from flashcore import _debug, fused_attention

ARGS = (
    "Tensor q, Tensor k, Tensor v, float scale, bool is_causal, int window_left, "
    "int window_right, bool bottom_right, float softcap, bool enable_gqa, int config"
)
EXPECTED_SCHEMAS = {
    "fwd": f"flashcore::fwd({ARGS}) -> Tensor",
    "fwd_lse": f"flashcore::fwd_lse({ARGS}) -> (Tensor, Tensor)",
    "fwd_train": (
        "flashcore::fwd_train(Tensor q, Tensor k, Tensor v, float scale, bool is_causal, "
        "int window_left, int window_right, bool bottom_right, float softcap, bool enable_gqa, "
        "bool deterministic, int config) -> (Tensor, Tensor)"
    ),
    "bwd": (
        "flashcore::bwd(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, "
        "Tensor? dlse, float scale, bool is_causal, int window_left, int window_right, "
        "bool bottom_right, float softcap, bool enable_gqa, bool deterministic, int config, "
        "int gqa_split=-1) -> (Tensor, Tensor, Tensor)"
    ),
}
KiB = 1024
# (sm_count, cc_major, cc_minor, max dynamic shared memory per block with opt-in)
DEVICES = {
    "H100/H200": {"sm_count": 132, "cc_major": 9, "cc_minor": 0, "smem_optin": 227 * KiB},
    "A100": {"sm_count": 108, "cc_major": 8, "cc_minor": 0, "smem_optin": 163 * KiB},
    "RTX3090": {"sm_count": 82, "cc_major": 8, "cc_minor": 6, "smem_optin": 99 * KiB},
    "L4": {"sm_count": 58, "cc_major": 8, "cc_minor": 9, "smem_optin": 99 * KiB},
}
HEAD_DIMS = list(range(8, 257, 8))


@pytest.fixture
def fake():
    with FakeTensorMode() as mode:
        yield mode


def qkv(b=2, h=4, sq=100, sk=77, d=64, dtype=torch.float16, device="cuda", hkv=None):
    hkv = h if hkv is None else hkv
    q = torch.empty(b, h, sq, d, dtype=dtype, device=device)
    k = torch.empty(b, hkv, sk, d, dtype=dtype, device=device)
    v = torch.empty(b, hkv, sk, d, dtype=dtype, device=device)
    return q, k, v


def test_import_without_gpu_in_fresh_process():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    code = (
        "import sys, torch, flashcore; "
        "assert not torch.cuda.is_available(); "
        "assert flashcore.build_info()['load_error'] is None, flashcore.build_info(); "
        "assert 'transformers' not in sys.modules; "
        "print(flashcore.__version__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == flashcore.__version__


@pytest.mark.parametrize("name", sorted(EXPECTED_SCHEMAS))
def test_op_schema_registered(name):
    op = getattr(torch.ops.flashcore, name).default
    assert str(op._schema) == EXPECTED_SCHEMAS[name]


def test_old_torch_is_refused_with_clear_message():
    # Fakes the installed torch version, then imports flashcore in a fresh process.
    code = "import torch; torch.__version__ = '2.9.1+cu128'; import flashcore"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "ImportError: flashcore requires torch >= 2.10" in out.stderr
    assert "but torch 2.9.1+cu128 is installed" in out.stderr


def test_build_info_fields():
    info = flashcore.build_info()
    assert info["version"] == flashcore.__version__
    assert info["torch_target"] == "2.10"
    assert info["load_error"] is None
    assert info["sass_archs"], info
    assert all(re.fullmatch(r"sm_\d+a?", a) for a in info["sass_archs"]), info
    assert re.fullmatch(r"\d+\.\d+", info["cuda_version"]), info
    assert Path(info["library"]).name.endswith(".abi3.so"), info


def test_extension_holds_sass_for_every_target_arch(cuobjdump):
    info = flashcore.build_info()
    tool = cuobjdump
    elf = subprocess.run(
        [tool, "--list-elf", info["library"]], capture_output=True, text=True, check=True
    ).stdout
    found = sorted(set(re.findall(r"\.(sm_\d+a?)\.cubin", elf)))
    assert found == sorted(info["sass_archs"]), elf
    ptx = subprocess.run(
        [tool, "--list-ptx", info["library"]], capture_output=True, text=True, check=True
    ).stdout
    found_ptx = sorted(set(re.findall(r"\.(sm_\d+)\.ptx", ptx)))
    expect_ptx = [info["ptx_arch"].replace("compute_", "sm_")] if info["ptx_arch"] else []
    assert found_ptx == expect_ptx, ptx
    if os.environ.get("FLASHCORE_EXPECT_RELEASE_ARCHS") == "1":
        # Release builds (CI, wheels) must cover every product target.
        # sm_90a: the plain sm_90 kernels plus the Hopper wgmma/TMA family.
        assert found == ["sm_80", "sm_86", "sm_89", "sm_90a"], elf
        assert info["ptx_arch"] == "compute_90", info


# ---- the argument contract: every user-facing error ----------------------------


def test_cpu_tensors_say_a_cuda_gpu_is_needed():
    q, k, v = qkv(device="cpu")
    with pytest.raises(ValueError, match=r"q must be a CUDA tensor.*CUDA GPU.*got device 'cpu'"):
        fused_attention(q, k, v)


def test_non_tensor_input(fake):
    q, _, v = qkv()
    with pytest.raises(TypeError, match=r"k must be a torch.Tensor, got list"):
        fused_attention(q, [1, 2], v)


def test_different_devices(fake, monkeypatch):
    from torch._subclasses import fake_tensor
    from torch._subclasses.fake_tensor import FakeTensor

    q, k, v = qkv()
    # Built directly so no second GPU (and no GPU at all) is needed; on a
    # one-GPU machine FakeTensor would otherwise touch cuda:1 to set up a context.
    monkeypatch.setattr(fake_tensor, "init_gpu_context", lambda device: None)
    k1 = FakeTensor(
        fake, torch.empty(k.shape, dtype=k.dtype, device="meta"), torch.device("cuda:1")
    )
    with pytest.raises(ValueError, match=r"same device, got q on cuda:0 and k on cuda:1"):
        fused_attention(q, k1, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int8])
def test_unsupported_dtype_lists_supported(fake, dtype):
    q, k, v = (t.to(dtype) for t in qkv())
    with pytest.raises(
        TypeError, match=rf"q.dtype must be one of \(torch.float16, torch.bfloat16\), got {dtype}"
    ):
        fused_attention(q, k, v)


def test_mixed_dtypes(fake):
    q, k, v = qkv()
    with pytest.raises(
        TypeError, match=r"same dtype, got q torch.float16, k torch.bfloat16, v torch.float16"
    ):
        fused_attention(q, k.to(torch.bfloat16), v)


def test_not_4d(fake):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"q must be 4-D \(batch, heads, seqlen, head_dim\)"):
        fused_attention(q[0], k, v)


@pytest.mark.parametrize("d", [4, 12, 100, 264, 512])
def test_unsupported_head_dim(fake, d):
    q, k, v = qkv(d=d)
    with pytest.raises(
        ValueError,
        match=rf"q.shape\[-1\] \(head_dim\) must be a multiple of 8 from 8 to 256, got {d}",
    ):
        fused_attention(q, k, v)


@pytest.mark.parametrize("d", HEAD_DIMS)
def test_every_supported_head_dim_is_accepted(fake, d):
    q, k, v = qkv(d=d, dtype=torch.bfloat16)
    out = fused_attention(q, k, v)
    assert out.shape == q.shape and out.dtype == torch.bfloat16


def test_head_dims_differ(fake):
    q, _, v = qkv()
    _, k, _ = qkv(d=128)
    with pytest.raises(ValueError, match=r"same head_dim \(dim 3\), got q 64, k 128, v 64"):
        fused_attention(q, k, v)


def test_mismatched_batch(fake):
    q, _, _ = qkv(b=2)
    _, k, v = qkv(b=3)
    with pytest.raises(ValueError, match=r"same batch size \(dim 0\), got q 2, k 3, v 3"):
        fused_attention(q, k, v)


def test_head_mismatch_without_gqa_says_enable_gqa(fake):
    q, k, v = qkv(h=8, hkv=2)
    with pytest.raises(ValueError, match=r"got q 8, k 2, v 2; .*pass enable_gqa=True"):
        fused_attention(q, k, v)
    assert fused_attention(q, k, v, enable_gqa=True).shape == q.shape


def test_gqa_heads_not_a_multiple(fake):
    q, k, v = qkv(h=6, hkv=4)
    with pytest.raises(
        ValueError, match=r"enable_gqa=True, q's heads .* multiple .*got q 6, k and v 4"
    ):
        fused_attention(q, k, v, enable_gqa=True)


def test_k_v_heads_differ(fake):
    q, k, _ = qkv(h=4)
    _, _, v = qkv(h=4, hkv=2)
    with pytest.raises(
        ValueError, match=r"k and v must have the same number of heads.*got k 4 and v 2"
    ):
        fused_attention(q, k, v, enable_gqa=True)


def test_k_v_seqlen_differ(fake):
    q, k, _ = qkv(sk=77)
    _, _, v = qkv(sk=78)
    with pytest.raises(ValueError, match=r"k and v must have the same seqlen.*got k 77 and v 78"):
        fused_attention(q, k, v)


def test_empty_keys(fake):
    q, k, v = qkv(sk=0)
    with pytest.raises(ValueError, match=r"seqlen_k\) must be >= 1.*got 0"):
        fused_attention(q, k, v)


def test_last_dim_not_contiguous(fake):
    _, k, v = qkv()
    q_t = torch.empty(2, 4, 64, 100, dtype=torch.float16, device="cuda").transpose(2, 3)
    with pytest.raises(ValueError, match=r"q.stride\(-1\) must be 1 .*got 100"):
        fused_attention(q_t, k, v)


@pytest.mark.parametrize("scale", [0.0, -0.5, float("inf"), float("nan")])
def test_bad_scale_value(fake, scale):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"scale must be finite and > 0, got"):
        fused_attention(q, k, v, scale=scale)


@pytest.mark.parametrize("scale", ["0.1", True, torch.tensor(0.1)])
def test_bad_scale_type(fake, scale):
    q, k, v = qkv()
    with pytest.raises(TypeError, match=r"scale must be a float or None, got"):
        fused_attention(q, k, v, scale=scale)


@pytest.mark.parametrize("window", [(-2, 0), (0, -5), (-3, -3)])
def test_window_values_below_minus_one(fake, window):
    q, k, v = qkv()
    with pytest.raises(
        ValueError,
        match=rf"window values must be >= 0, or -1 .*got window=\({window[0]}, {window[1]}\)",
    ):
        fused_attention(q, k, v, window=window)


@pytest.mark.parametrize("window", [5, (1, 2, 3), (1.0, 2), (True, 0), "(4, 0)"])
def test_window_type(fake, window):
    q, k, v = qkv()
    with pytest.raises(TypeError, match=r"window must be None or a pair of ints"):
        fused_attention(q, k, v, window=window)


@pytest.mark.parametrize("softcap", [-1.0, float("inf"), float("nan")])
def test_bad_softcap_value(fake, softcap):
    q, k, v = qkv()
    with pytest.raises(
        ValueError, match=r"softcap must be a finite number > 0 \(or None / 0 for off\), got"
    ):
        fused_attention(q, k, v, softcap=softcap)


@pytest.mark.parametrize("softcap", ["30", True])
def test_bad_softcap_type(fake, softcap):
    q, k, v = qkv()
    with pytest.raises(TypeError, match=r"softcap must be a float or None, got"):
        fused_attention(q, k, v, softcap=softcap)


@pytest.mark.parametrize("alignment", ["bottom-right", "top", None, 1])
def test_unknown_alignment(fake, alignment):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"alignment must be 'top_left' or 'bottom_right', got"):
        fused_attention(q, k, v, causal=True, alignment=alignment)


def test_requires_grad_records_a_backward(fake):
    # Training calls run fwd_train (autograd: tests/test_autograd_api.py); no-grad
    # calls keep the plain forward and record nothing.
    q, k, v = qkv()
    q.requires_grad_(True)
    out = fused_attention(q, k, v)
    assert out.requires_grad and "fwd_train" in type(out.grad_fn).__name__
    with torch.no_grad():
        out = fused_attention(q, k, v)
        assert out.shape == q.shape and out.grad_fn is None and not out.requires_grad


def test_forced_config_too_narrow_for_head_dim(fake):
    q, k, v = qkv(d=80)
    with (
        _debug.forced_config("d64_m128"),
        pytest.raises(
            ValueError,
            match=r"forced kernel config d64_m128 serves head_dim <= 64, got head_dim 80",
        ),
    ):
        fused_attention(q, k, v)


def test_direct_op_call_is_checked_too(fake):
    # torch.ops.flashcore.* bypasses the Python wrapper: the fake implementation
    # runs the same contract.
    q, k, v = qkv(h=8, hkv=2)
    with pytest.raises(ValueError, match=r"pass enable_gqa=True"):
        torch.ops.flashcore.fwd(q, k, v, 0.125, False, -1, -1, False, 0.0, False, -1)


# ---- fake tensors: shape/dtype inference for torch.compile ---------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("d", [8, 80, 128, 256])
def test_fake_inference(fake, dtype, d):
    q, k, v = qkv(b=3, h=8, hkv=2, sq=33, sk=91, d=d, dtype=dtype)
    kw = {
        "enable_gqa": True,
        "causal": True,
        "window": (16, -1),
        "alignment": "bottom_right",
        "softcap": 30.0,
    }
    out = fused_attention(q, k, v, **kw)
    assert out.shape == (3, 8, 33, d) and out.dtype == dtype and out.is_contiguous()
    out, lse = fused_attention(q, k, v, return_lse=True, **kw)
    assert out.shape == (3, 8, 33, d) and out.dtype == dtype
    assert lse.shape == (3, 8, 33) and lse.dtype == torch.float32


# ---- the kernel-config catalog and the dispatch heuristic (pure, CPU) ----------


def test_catalog_is_consistent():
    cfgs = _debug.configs()
    names = [c["name"] for c in cfgs]
    assert len(set(names)) == len(names), names
    tiles = sorted({c["head_dim"] for c in cfgs})
    assert tiles == [32, 64, 96, 128, 192, 256], tiles
    for c in cfgs:
        assert c["smem_bytes"] <= 227 * KiB, c
        assert c["block_m"] % 16 == 0 and c["block_n"] % 32 == 0, c
        assert c["key_groups"] in (1, 2, 4), c


@pytest.mark.parametrize("device", sorted(DEVICES))
def test_every_head_dim_has_a_config_on_every_target(device):
    # Every supported head dim is served on sm_80/86/89/90, at any grid size.
    dev = DEVICES[device]
    for d in HEAD_DIMS:
        for shape in [(1, 1, 1, 1), (1, 8, 512, 512), (1, 8, 1024, 1024), (8, 16, 4096, 4096)]:
            name = _debug.heuristic(*shape, d, **dev)
            assert name is not None, (device, d, shape)


@pytest.mark.parametrize("device", sorted(DEVICES))
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 1, 1),
        (1, 8, 256, 256),
        (1, 8, 1024, 1024),
        (2, 4, 1000, 3000),
        (8, 16, 4096, 4096),
        (1, 32, 8192, 8192),
    ],
)
def test_heuristic_picks_the_narrowest_tile_that_fits(device, shape):
    dev = DEVICES[device]
    by_name = {c["name"]: c for c in _debug.configs()}
    tiles = sorted({c["head_dim"] for c in _debug.configs()})
    for d in HEAD_DIMS:
        c = by_name[_debug.heuristic(*shape, d, **dev)]
        assert c["head_dim"] == min(t for t in tiles if t >= d), (device, shape, d, c)
        assert c["smem_bytes"] <= dev["smem_optin"], (device, shape, d, c)


@pytest.mark.parametrize(
    "shape, d, device, expected",
    [
        # Seed shapes on Hopper: key-group configs (benchmarks/NOTES.md).
        ((1, 8, 256, 256), 64, "H100/H200", "d64_m32_g4"),
        ((1, 8, 512, 512), 64, "H100/H200", "d64_m32_g4"),
        ((1, 8, 1024, 1024), 64, "H100/H200", "d64_m64_g4"),
        ((1, 16, 512, 512), 64, "H100/H200", "d64_m64_g2"),  # 8 key tiles: two groups
        ((2, 8, 1024, 1024), 64, "H100/H200", "d64_m64"),
        # Grids of 128-row tiles that fill the GPU: the Hopper wgmma/TMA family,
        # persistent without a mask (masked calls: test_heuristic_sm90_*); head
        # dim 64 with rows >= 2048: three consumer warpgroups (v27), persistent
        # where the last wave's tiles split along keys (v28: 704, 2816 and 688
        # tiles of 192 rows on 132 SMs), else one block per tile.
        ((8, 16, 1024, 1024), 64, "H100/H200", "sm90_d64_p"),
        ((4, 16, 2048, 2048), 64, "H100/H200", "sm90_d64_w3_p"),
        ((8, 16, 4096, 4096), 64, "H100/H200", "sm90_d64_w3_p"),
        ((2, 8, 8192, 8192), 64, "H100/H200", "sm90_d64_w3_p"),
        ((8, 16, 4096, 4096), 48, "H100/H200", "sm90_d64_w3_p"),
        ((2, 16, 16384, 16384), 64, "H100/H200", "sm90_d64_w3"),  # 112 in the last wave
        ((4, 12, 2048, 2048), 64, "H100/H200", "sm90_d64_w3"),  # 528 tiles: 4 full waves
        ((1, 8, 512, 512), 128, "H100/H200", "d128_m32_g4"),
        ((1, 8, 1024, 1024), 128, "H100/H200", "d128_m64_g2"),
        ((4, 16, 2048, 2048), 128, "H100/H200", "sm90_d128_p"),
        ((8, 16, 4096, 4096), 128, "H100/H200", "sm90_d128_p"),
        ((1, 32, 8192, 8192), 128, "H100/H200", "sm90_d128_p"),
        # head dim 128 from 16384 rows without a mask: one block per tile (v30)
        ((2, 16, 16384, 16384), 128, "H100/H200", "sm90_d128"),
        ((2, 16, 16384, 8192), 128, "H100/H200", "sm90_d128_p"),  # rows = min(Sq, Sk)
        ((8, 16, 4096, 4096), 96, "H100/H200", "d96_m128"),  # has its own tile width
        ((8, 16, 4096, 4096), 128, "A100", "d128_m128"),  # sm_80: mma.sync only
        ((8, 16, 4096, 4096), 256, "H100/H200", "d256_m128"),
        # 99 KB of shared memory (sm_86 / sm_89): no config over it.
        ((1, 8, 512, 512), 64, "L4", "d64_m64"),
        ((1, 4, 512, 512), 64, "L4", "d64_m64_g2"),
        ((1, 4, 1024, 1024), 128, "L4", "d128_m64"),
        ((8, 16, 4096, 4096), 192, "L4", "d192_m64"),
        ((8, 16, 4096, 4096), 256, "RTX3090", "d256_m64"),
        ((8, 16, 4096, 4096), 256, "A100", "d256_m128"),
    ],
)
def test_heuristic_choices(shape, d, device, expected):
    assert _debug.heuristic(*shape, d, **DEVICES[device]) == expected


@pytest.mark.parametrize(
    "shape, d, expected",
    [((8, 16, 4096, 4096), 64, "d64_m128"), ((4, 16, 2048, 2048), 128, "d128_m128")],
)
def test_heuristic_keeps_mma_sync_when_inputs_do_not_suit_tma(shape, d, expected):
    assert _debug.heuristic(*shape, d, **DEVICES["H100/H200"], tma_ok=False) == expected
    assert (
        _debug.heuristic(*shape, d, **DEVICES["H100/H200"], tma_ok=False, masked=True) == expected
    )


@pytest.mark.parametrize(
    "shape, d, plain",
    [
        ((8, 16, 1024, 1024), 64, "sm90_d64"),  # rows < 2048: two warpgroups
        ((4, 16, 2048, 2048), 128, "sm90_d128"),
        ((2, 16, 16384, 16384), 128, "sm90_d128"),
        ((1, 32, 8192, 8192), 128, "sm90_d128"),
    ],
)
def test_heuristic_sm90_persistent_unless_masked_past_64_query_tiles(shape, d, plain):
    # Without a mask, the persistent build (benchmarks/NOTES.md, v10), except
    # head dim 128 from 16384 rows (NOTES v30). Under a
    # causal mask or a window, with the longest-first order, the persistent
    # build up to 64 query tiles of 128 per head (seqlen_q 8192); past that the
    # one-block-per-tile build, which measured faster at 16K (NOTES v15).
    dev = DEVICES["H100/H200"]
    _, h, sq, sk = shape

    def unmasked_pick(sq, sk):
        return plain if d == 128 and min(sq, sk) >= 16384 else plain + "_p"

    masked_pick = plain if -(-sq // 128) > 64 else plain + "_p"
    assert _debug.heuristic(*shape, d, **dev, masked=True) == masked_pick
    assert _debug.heuristic(*shape, d, **dev, masked=False) == unmasked_pick(sq, sk)
    # The bound is on query tiles, whatever the keys: 8193 queries are 65 tiles.
    if sq <= 8192:
        longer = (1, h, 8193, sk)
        assert _debug.heuristic(*longer, d, **dev, masked=True) == plain
        assert _debug.heuristic(*longer, d, **dev, masked=False) == unmasked_pick(8193, sk)
    by_name = {c["name"]: c for c in _debug.configs()}
    assert by_name[plain + "_p"]["persistent"] and not by_name[plain]["persistent"]


@pytest.mark.parametrize(
    "shape, masked, expected",
    [
        ((4, 16, 2048, 2048), False, "sm90_d64_w3_p"),  # 704 tiles: tail split (v28)
        ((4, 16, 2047, 2047), False, "sm90_d64_p"),
        ((8, 16, 4096, 4096), False, "sm90_d64_w3_p"),  # 2816 tiles: tail split
        ((4, 12, 2048, 2048), False, "sm90_d64_w3"),  # 528 tiles: 4 full waves
        ((2, 16, 16384, 16384), False, "sm90_d64_w3"),  # 112 in the last wave: no split
        ((1, 16, 16384, 16384), False, "sm90_d64_w3"),  # splits, but past 8192 rows
        ((1, 16, 32768, 32768), False, "sm90_d64_w3"),
        ((8, 16, 4096, 4096), True, "sm90_d64_w3_p"),
        ((4, 16, 2048, 2048), True, "sm90_d64_w3_p"),
        ((8, 16, 1536, 1536), True, "sm90_d64_w3_p"),  # masked from 1536 rows (v30)
        ((8, 16, 1535, 1535), True, "sm90_d64_p"),  # masked below 1536 rows: two
        ((2, 16, 8192, 8192), True, "sm90_d64_w3_p"),
        ((1, 32, 8192, 8192), True, "sm90_d64_w3_p"),
        ((1, 16, 8256, 8256), True, "sm90_d64_w3_p"),  # 43 query tiles of 192
        ((1, 16, 8257, 8257), True, "sm90_d64_w3"),  # 44: one block per tile (v27)
        ((2, 16, 16384, 16384), True, "sm90_d64_w3"),
        ((1, 16, 32768, 32768), True, "sm90_d64_w3"),
        # rows = min(seqlen_q, seqlen_k)
        ((8, 16, 4096, 1024), False, "sm90_d64_p"),
        ((8, 16, 4096, 2048), False, "sm90_d64_w3_p"),
        ((8, 16, 1024, 8192), False, "sm90_d64_p"),
        ((1, 16, 8192, 1536), True, "sm90_d64_w3_p"),
        ((1, 16, 8192, 1535), True, "sm90_d64_p"),
        # 192-row tiles that do not fill the GPU: two warpgroups (128-row tiles do)
        ((1, 3, 8192, 8192), False, "sm90_d64_p"),
        ((1, 4, 8192, 8192), False, "sm90_d64_w3_p"),  # 172 tiles: tail split
    ],
)
def test_heuristic_sm90_d64_three_warpgroups_for_long_rows(shape, masked, expected):
    # Head dims served by the 64-wide tile (NOTES v17, v27): three consumer
    # warpgroups from 2048 rows without a mask (persistent where the tail split
    # applies, v28) and from 1536 under one (v30), the persistent twin up to 43 query
    # tiles; softcap keeps two.
    dev = DEVICES["H100/H200"]
    for d in (64, 40):
        assert _debug.heuristic(*shape, d, **dev, masked=masked) == expected, d
        two = _debug.heuristic(*shape, d, **dev, masked=masked, softcap=True)
        assert two in ("sm90_d64", "sm90_d64_p"), (d, two)
        if "w3" not in expected:
            assert two == expected, d
    # Off Hopper and for inputs TMA cannot read nothing changes.
    assert not _debug.heuristic(*shape, 64, **DEVICES["A100"], masked=masked).startswith("sm90")
    assert _debug.heuristic(*shape, 64, **dev, masked=masked, tma_ok=False).startswith("d64_")


@pytest.mark.parametrize(
    "sq, sk, kw, expected",
    [
        (100, 100, {}, False),
        (100, 100, {"causal": True}, True),
        (100, 300, {"causal": True, "window": (-1, 500)}, True),
        (100, 100, {"window": (-1, -1)}, False),
        (100, 300, {"window": (300, 300)}, False),  # sides as long as max(Sq, Sk)
        (100, 300, {"window": (299, -1)}, True),
        (300, 100, {"window": (-1, 299)}, True),
        (1, 1, {"causal": True}, True),  # right side 0 < 1
    ],
)
def test_masked_mirrors_the_op_rule(sq, sk, kw, expected):
    # _debug.masked is the Python copy of api/ops.cpp's has_mask (after the
    # window clamp); the kernel-variant choice (fwd_has_mask) uses the same.
    assert _debug.masked(sq, sk, **kw) is expected


def test_sm90_family_is_flagged_in_the_catalog():
    sm90 = [c for c in _debug.configs() if c["sm90"]]
    assert {c["head_dim"] for c in sm90} == {64, 128}, sm90
    # Two consumer warpgroups (128 rows, 12 warps with the producer's), or three
    # at head dim 64 (192 rows, 16 warps; forced only).
    shapes = {(c["head_dim"], c["block_m"], c["warps"]) for c in sm90}
    assert shapes == {(64, 128, 12), (128, 128, 12), (64, 192, 16)}, sm90
    first = min(i for i, c in enumerate(_debug.configs()) if c["sm90"])
    assert all(c["sm90"] for c in _debug.configs()[first:]), "sm90 configs follow the mma.sync ones"


def test_no_config_fits_a_tiny_smem_device():
    assert (
        _debug.heuristic(1, 8, 512, 512, 64, sm_count=10, cc_major=8, smem_optin=16 * KiB) is None
    )


def test_forced_config_unknown_name():
    with (
        pytest.raises(ValueError, match=r"unknown kernel config 'nope'; compiled: d32_m128"),
        _debug.forced_config("nope"),
    ):
        pass
