"""CPU tests: import, registration, validation, fake-tensor inference, build info.

None of these need a GPU. Validation is exercised on fake CUDA tensors
(FakeTensorMode), which carry device/dtype/shape/strides but no memory.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import flashcore
from flashcore import fused_attention

EXPECTED_SCHEMAS = {
    "fwd": "flashcore::fwd(Tensor q, Tensor k, Tensor v, float scale, bool is_causal) -> Tensor",
    "fwd_lse": "flashcore::fwd_lse(Tensor q, Tensor k, Tensor v, float scale, bool is_causal)"
    " -> (Tensor, Tensor)",
}


@pytest.fixture
def fake():
    with FakeTensorMode() as mode:
        yield mode


def qkv(b=2, h=4, sq=100, sk=77, d=64, dtype=torch.float16, device="cuda"):
    q = torch.empty(b, h, sq, d, dtype=dtype, device=device)
    k = torch.empty(b, h, sk, d, dtype=dtype, device=device)
    v = torch.empty(b, h, sk, d, dtype=dtype, device=device)
    return q, k, v


def test_import_without_gpu_in_fresh_process():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    code = (
        "import torch, flashcore; "
        "assert not torch.cuda.is_available(); "
        "assert flashcore.build_info()['load_error'] is None, flashcore.build_info(); "
        "print(flashcore.__version__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == flashcore.__version__


def test_version_is_single_sourced():
    from importlib.metadata import version

    assert flashcore.__version__ == version("flashcore")


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
    assert all(re.fullmatch(r"sm_\d+", a) for a in info["sass_archs"]), info
    assert re.fullmatch(r"\d+\.\d+", info["cuda_version"]), info
    assert Path(info["library"]).name.endswith(".abi3.so"), info


def _cuobjdump() -> str:
    candidates = [shutil.which("cuobjdump")]
    cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    candidates.append(str(Path(cuda_home) / "bin" / "cuobjdump"))
    try:  # triton (a torch dependency on Linux) ships one
        import triton

        candidates.append(str(Path(triton.__file__).parent / "backends/nvidia/bin/cuobjdump"))
    except ImportError:
        pass
    for c in candidates:
        if c and Path(c).is_file():
            return c
    raise AssertionError(f"cuobjdump not found (looked at {candidates}); install the CUDA toolkit")


def test_extension_holds_sass_for_every_target_arch():
    info = flashcore.build_info()
    tool = _cuobjdump()
    elf = subprocess.run(
        [tool, "--list-elf", info["library"]], capture_output=True, text=True, check=True
    ).stdout
    found = sorted(set(re.findall(r"\.(sm_\d+)\.cubin", elf)))
    assert found == sorted(info["sass_archs"]), elf
    ptx = subprocess.run(
        [tool, "--list-ptx", info["library"]], capture_output=True, text=True, check=True
    ).stdout
    found_ptx = sorted(set(re.findall(r"\.(sm_\d+)\.ptx", ptx)))
    expect_ptx = [info["ptx_arch"].replace("compute_", "sm_")] if info["ptx_arch"] else []
    assert found_ptx == expect_ptx, ptx
    if os.environ.get("FLASHCORE_EXPECT_RELEASE_ARCHS") == "1":
        # Release builds (CI, wheels) must cover every product target.
        assert found == ["sm_80", "sm_86", "sm_89", "sm_90"], elf
        assert info["ptx_arch"] == "compute_90", info


# ---- validation: every user-facing error --------------------------------------


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
    with pytest.raises(ValueError, match=r"same device, got q on cuda:0, k on cuda:1"):
        fused_attention(q, k1, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_unsupported_dtype_lists_supported(fake, dtype):
    q, k, v = qkv()
    with pytest.raises(TypeError, match=rf"v.dtype must be one of \(torch.float16\), got {dtype}"):
        fused_attention(q, k, v.to(dtype))


def test_not_4d(fake):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"q must be 4-D .*got 3-D with shape \(4, 100, 64\)"):
        fused_attention(q[0], k, v)


@pytest.mark.parametrize("d", [32, 80, 128])
def test_head_dim_not_64(fake, d):
    q, k, v = qkv(d=d)
    with pytest.raises(ValueError, match=rf"q.shape\[-1\] \(head_dim\) must be 64, got {d}"):
        fused_attention(q, k, v)


def test_mismatched_batch(fake):
    q, _, _ = qkv(b=2)
    _, k, v = qkv(b=3)
    with pytest.raises(ValueError, match=r"same batch size \(dim 0\), got q 2, k 3, v 3"):
        fused_attention(q, k, v)


def test_mismatched_heads(fake):
    q, k, _ = qkv(h=4)
    _, _, v = qkv(h=2)
    with pytest.raises(ValueError, match=r"same heads size \(dim 1\), got q 4, k 4, v 2"):
        fused_attention(q, k, v)


def test_mismatched_head_dim_between_q_and_k(fake):
    q, _, v = qkv()
    _, k, _ = qkv(d=128)
    with pytest.raises(ValueError, match=r"k.shape\[-1\] \(head_dim\) must be 64, got 128"):
        fused_attention(q, k, v)


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


def test_requires_grad_is_refused(fake):
    q, k, v = qkv()
    q.requires_grad_(True)
    with pytest.raises(RuntimeError, match=r"requires grad.*no backward pass"):
        fused_attention(q, k, v)
    with torch.no_grad():  # allowed: inference under no_grad
        assert fused_attention(q, k, v).shape == q.shape


# ---- fake tensors: shape/dtype inference for torch.compile ---------------------


@pytest.mark.parametrize("causal", [False, True])
def test_fake_inference(fake, causal):
    q, k, v = qkv(b=3, h=5, sq=33, sk=91)
    out = fused_attention(q, k, v, causal=causal)
    assert out.shape == (3, 5, 33, 64) and out.dtype == torch.float16 and out.is_contiguous()
    out, lse = fused_attention(q, k, v, causal=causal, return_lse=True)
    assert out.shape == (3, 5, 33, 64)
    assert lse.shape == (3, 5, 33) and lse.dtype == torch.float32


def test_fake_inference_non_contiguous_view(fake):
    # (B, S, H, D) storage viewed as (B, H, S, D): accepted, output contiguous.
    x = torch.empty(2, 50, 4, 64, dtype=torch.float16, device="cuda").transpose(1, 2)
    out = fused_attention(x, x, x)
    assert out.shape == (2, 4, 50, 64) and out.is_contiguous()
