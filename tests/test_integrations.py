"""The drop-ins: flashcore.scaled_dot_product_attention (SDPA's signature) and
flashcore.integrations.transformers (attn_implementation=NAME).

CPU tests check the glue: importing flashcore never imports transformers;
register() is idempotent; every call flashcore cannot serve is handed to
PyTorch's SDPA with results identical to SDPA's own; and, with the kernel
replaced by the float64 reference of flashcore._reference (the same
arguments), tiny transformers models of five families give the logits of the
same model on SDPA / eager through prefill, KV-cache decode and chunked prefill,
so the causal alignment, sliding windows, GQA, scaling and softcap that the glue
passes are the model's. GPU tests run the real kernel in those models and in the
SDPA drop-in.
"""

import copy
import json
import os
import subprocess
import sys
import zlib

import pytest
import torch
import torch.nn.functional as F

import flashcore
from flashcore import _reference
from flashcore import sdpa as fsdpa

# CI installs transformers; there a missing one is a failure, not a skip.
if os.environ.get("FLASHCORE_EXPECT_TRANSFORMERS") == "1":
    import transformers
transformers = pytest.importorskip("transformers")
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
)

import flashcore.integrations.transformers as fct

HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def _seed_and_counts(request):
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))
    flashcore.reset_call_counts()


# ---------------------------------------------------------------- CPU: packaging


def test_import_flashcore_does_not_import_transformers():
    code = "import sys, flashcore; sys.exit(1 if 'transformers' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_works_without_transformers_installed():
    # transformers made unimportable: flashcore and the integration module still
    # import; only register() needs it, and says so.
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "import flashcore, flashcore.integrations.transformers as fct\n"
        "try:\n"
        "    fct.register()\n"
        "except ImportError as e:\n"
        "    sys.exit(0 if 'needs the transformers package' in str(e) else 2)\n"
        "sys.exit(3)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_register_is_idempotent():
    fct.register()
    fct.register()
    assert fct.is_registered()
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    assert AttentionInterface()[fct.NAME] is fct.flashcore_attention_forward
    assert AttentionMaskInterface()[fct.NAME] is fct.flashcore_mask


def test_name_is_not_taken_for_flash_attn():
    # transformers routes every implementation whose name contains "flash" to
    # its flash-attn kernel loader.
    from transformers.utils.generic import is_flash_attention_requested

    assert not is_flash_attention_requested(requested_attention_implementation=fct.NAME)


# ---------------------------------------------------------------- CPU: SDPA drop-in fallbacks


def _sdpa_cases(device):
    """(label, q, k, v, kwargs) that flashcore hands to SDPA on `device`."""
    h = torch.float16 if device == "cuda" else torch.float32
    mk = lambda *s, dt=h: torch.randn(*s, device=device, dtype=dt)
    q, k, v = mk(2, 4, 33, 64), mk(2, 4, 47, 64), mk(2, 4, 47, 64)
    mask_b = torch.rand(33, 47, device=device) > 0.3
    mask_f = torch.randn(2, 1, 33, 47, device=device, dtype=h)
    yield "bool mask", q, k, v, {"attn_mask": mask_b}
    yield "additive mask", q, k, v, {"attn_mask": mask_f, "scale": 0.3}
    yield "dropout", q, k, v, {"dropout_p": 0.25}
    yield "float32", q.float(), k.float(), v.float(), {"is_causal": True}
    yield "3-D", q[0], k[0], v[0], {}
    yield "value dim differs", q, k, v[..., :32], {}
    yield "scale 0", q, k, v, {"scale": 0.0}
    yield "negative scale", q, k, v, {"scale": -0.5}
    kg, vg = mk(2, 2, 47, 64), mk(2, 2, 47, 64)
    yield "gqa with mask", q, kg, vg, {"enable_gqa": True, "attn_mask": mask_b}
    if device == "cpu":
        yield "cpu gqa causal", q, kg, vg, {"enable_gqa": True, "is_causal": True}
        yield "cpu plain", q, k, v, {}


def _same_as_sdpa(q, k, v, kw):
    torch.manual_seed(1234)
    ours = flashcore.scaled_dot_product_attention(q, k, v, **kw)
    torch.manual_seed(1234)
    theirs = F.scaled_dot_product_attention(q, k, v, **kw)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    # Bitwise equal, NaN where SDPA gives NaN (its CUDA backends do for scale 0).
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("case", [c[0] for c in _sdpa_cases("cpu")])
def test_sdpa_fallback_cpu_identical(case):
    _label, q, k, v, kw = next(c for c in _sdpa_cases("cpu") if c[0] == case)
    _same_as_sdpa(q, k, v, kw)
    counts = flashcore.call_counts()
    assert "flashcore" not in counts and sum(counts.values()) == 1


def test_sdpa_fallback_raises_what_sdpa_raises():
    q = torch.randn(1, 4, 8, 16)
    k = torch.randn(1, 3, 8, 16)
    with pytest.raises(RuntimeError) as ours:
        flashcore.scaled_dot_product_attention(q, k, k)
    with pytest.raises(RuntimeError) as theirs:
        F.scaled_dot_product_attention(q, k, k)
    assert str(ours.value) == str(theirs.value)


def test_sdpa_patched_in_place_does_not_recurse(monkeypatch):
    monkeypatch.setattr(F, "scaled_dot_product_attention", flashcore.scaled_dot_product_attention)
    q = torch.randn(1, 2, 8, 16)
    out = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    ref = torch._C._nn.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert torch.equal(out, ref)


# ---------------------------------------------------------------- CPU: model glue


def _configs():
    """Small random models with the head dims of the real ones: Llama 128 with
    GQA, Mistral 128 with a sliding window, Qwen2 64 with GQA, Gemma 2 256-wide
    heads scaled down to 64 with softcap and a window, GPT-2 64."""
    common = {
        "vocab_size": 128,
        "hidden_size": 256,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "max_position_embeddings": 256,
    }
    heads = {"num_attention_heads": 4, "num_key_value_heads": 2}
    yield "llama", LlamaConfig(**heads, head_dim=128, **common), "sdpa"
    yield "mistral", MistralConfig(**heads, head_dim=128, sliding_window=8, **common), "sdpa"
    yield "qwen2", Qwen2Config(**heads, **common), "sdpa"  # head dim 256 / 4 = 64
    gemma = Gemma2Config(
        **heads,
        head_dim=64,
        sliding_window=8,
        attn_logit_softcapping=30.0,
        final_logit_softcapping=None,
        query_pre_attn_scalar=64,
        **common,
    )
    yield "gemma2", gemma, "eager"  # SDPA has no softcap
    yield (
        "gpt2",
        GPT2Config(vocab_size=128, n_embd=256, n_layer=2, n_head=4, n_positions=256),
        "sdpa",
    )


FAMILIES = [name for name, _, _ in _configs()]


def _pair(name, attn_ref, dtype, device):
    """The same random model twice: on `attn_ref` and on flashcore."""
    cfg = next(c for n, c, _ in _configs() if n == name)
    ref = AutoModelForCausalLM.from_config(copy.deepcopy(cfg), attn_implementation=attn_ref)
    ours = AutoModelForCausalLM.from_config(copy.deepcopy(cfg), attn_implementation=fct.NAME)
    ours.load_state_dict(ref.state_dict())
    return ref.to(device, dtype).eval(), ours.to(device, dtype).eval()


def _run_sequence(model, ids, steps, chunk):
    """Logits of a prefill, `steps` one-token decode steps and one `chunk`-token
    chunked prefill on the KV cache, teacher-forced with the given tokens."""
    logits = []
    with torch.no_grad():
        out = model(ids[:, : -(steps + chunk)], use_cache=True)
        logits.append(out.logits)
        cache = out.past_key_values
        pos = ids.shape[1] - (steps + chunk)
        for _ in range(steps):
            out = model(ids[:, pos : pos + 1], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits.append(out.logits)
            pos += 1
        out = model(ids[:, pos : pos + chunk], past_key_values=cache, use_cache=True)
        logits.append(out.logits)
    return logits


def _reference_kernel(q, k, v, causal=False, scale=None, return_lse=False, **kw):
    assert not return_lse
    out, _ = _reference.attention_ref(q, k, v, causal, scale, **kw)
    return out.to(q.dtype)


@pytest.mark.parametrize("served", [True, False], ids=["served", "fallback"])
@pytest.mark.parametrize("family", FAMILIES)
def test_model_glue_cpu(family, served, monkeypatch):
    """float64 on the CPU. served: the kernel is the float64 reference with the
    arguments the glue passes; fallback: the glue's own SDPA / eager path."""
    fct.register()
    if served:
        monkeypatch.setattr(fct, "fused_attention", _reference_kernel)
        monkeypatch.setattr(fsdpa, "unsupported_reason", lambda q, k, v, enable_gqa: None)
    ref_impl = next(r for n, _, r in _configs() if n == family)
    ref, ours = _pair(family, ref_impl, torch.float64, "cpu")
    ids = torch.randint(0, 128, (2, 30))  # 14 prefill (> sliding window 8), 8 decode, 8 chunk
    a = _run_sequence(ref, ids, steps=8, chunk=8)
    b = _run_sequence(ours, ids, steps=8, chunk=8)
    for step, (x, y) in enumerate(zip(a, b)):
        assert torch.allclose(x, y, rtol=0, atol=1e-6), f"{family} step {step}"
    counts = flashcore.call_counts()
    calls = 2 * 10  # layers x forward passes
    if served:
        assert counts == {"flashcore": calls}
    else:
        assert counts == {"not on one CUDA device": calls}


@pytest.mark.parametrize("family", FAMILIES)
def test_model_padding_falls_back_cpu(family):
    fct.register()
    ref_impl = next(r for n, _, r in _configs() if n == family)
    ref, ours = _pair(family, ref_impl, torch.float32, "cpu")
    ids = torch.randint(0, 128, (2, 20))
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[0, :3] = 0  # left padding
    with torch.no_grad():
        a = ref(ids, attention_mask=mask).logits
        b = ours(ids, attention_mask=mask).logits
    assert torch.allclose(a[1], b[1], atol=1e-5)
    assert torch.allclose(a[0, 3:], b[0, 3:], atol=1e-5)
    assert flashcore.call_counts() == {"attention mask (padding or a patterned mask)": 2}


def test_mask_function_skips_only_what_bottom_right_covers():
    ones = torch.ones(2, 12, dtype=torch.bool)
    # dynamic cache, no padding: prefill, decode, chunk
    assert fct.flashcore_mask(2, 12, 12, 0, 0, attention_mask=ones) is None
    assert fct.flashcore_mask(2, 1, 12, 11, 0, attention_mask=ones) is None
    assert fct.flashcore_mask(2, 4, 12, 8, 0, attention_mask=None) is None
    # sliding-window layer of a dynamic cache: keys start at an offset
    assert fct.flashcore_mask(2, 1, 7, 11, 5, attention_mask=ones) is None
    padded = ones.clone()
    padded[0, 0] = False
    built = [
        fct.flashcore_mask(2, 12, 12, 0, 0, attention_mask=padded),  # padding
        fct.flashcore_mask(2, 4, 16, 8, 0, attention_mask=None),  # static cache: empty slots
        fct.flashcore_mask(2, 4, 12, 8, 0, attention_mask=None, allow_is_causal_skip=False),
        fct.flashcore_mask(2, 4, 12, torch.tensor(8), 0, attention_mask=None),
    ]
    for mask in built:
        assert mask is not None and mask.dtype == torch.bool and mask.dim() == 4


# ---------------------------------------------------------------- GPU: SDPA drop-in


@pytest.mark.gpu
@pytest.mark.parametrize("case", [c[0] for c in _sdpa_cases("cpu") if not c[0].startswith("cpu")])
def test_sdpa_fallback_gpu_identical(case):
    _label, q, k, v, kw = next(c for c in _sdpa_cases("cuda") if c[0] == case)
    _same_as_sdpa(q, k, v, kw)
    assert "flashcore" not in flashcore.call_counts()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize(
    "shape,kw",
    [
        ((2, 4, 4, 77, 77, 64), {}),
        ((2, 4, 4, 77, 130, 128), {"is_causal": True}),
        ((1, 8, 2, 200, 200, 128), {"is_causal": True, "enable_gqa": True}),
        ((1, 4, 4, 130, 77, 96), {"is_causal": True, "scale": 0.2}),
        ((3, 2, 1, 1, 300, 64), {"enable_gqa": True}),
    ],
    ids=["plain", "causal_sq<sk", "gqa_causal", "causal_sq>sk_scale", "mqa_decode"],
)
def test_sdpa_served_gpu(shape, kw, dtype):
    b, hq, hkv, sq, sk, d = shape
    q = torch.randn(b, hq, sq, d, device="cuda", dtype=dtype)
    k = torch.randn(b, hkv, sk, d, device="cuda", dtype=dtype)
    v = torch.randn(b, hkv, sk, d, device="cuda", dtype=dtype)
    out = flashcore.scaled_dot_product_attention(q, k, v, **kw)
    assert flashcore.call_counts() == {"flashcore": 1}
    check = _reference.compare(
        out,
        q,
        k,
        v,
        causal=kw.get("is_causal", False),
        scale=kw.get("scale"),
        enable_gqa=kw.get("enable_gqa", False),
    )
    assert check.ok, str(check)


# ---------------------------------------------------------------- GPU: models

# Teacher-forced sequence on the GPU: prefill, then 16 decode steps, then an
# 8-token chunk, all on a dynamic KV cache.
_PREFILL, _STEPS, _CHUNK = 40, 16, 8


def _max_err(xs, ys):
    return max((x.float() - y.float()).abs().max().item() for x, y in zip(xs, ys))


def _record_row(family, dtype, ref_impl, err_base, err_ours):
    """Appends one JSON line of the model table to $FLASHCORE_MODEL_TABLE, if set
    (ci/gpu_check.sh sets it, for the README's table and the closing note)."""
    path = os.environ.get("FLASHCORE_MODEL_TABLE")
    if path:
        row = {
            "family": family,
            "dtype": str(dtype).removeprefix("torch."),
            "reference": ref_impl,
            "max_logit_err_reference": err_base,
            "max_logit_err_flashcore": err_ours,
        }
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_model_logits_gpu(family, dtype):
    """flashcore's model against the same model on SDPA (eager for Gemma 2) in
    the same dtype, both against that model in float32: flashcore's logit error
    must be within 2x the low-precision reference's own error plus a floor, and
    flashcore must serve every attention call."""
    fct.register()
    ref_impl = next(r for n, _, r in _configs() if n == family)
    ref32, ours = _pair(family, ref_impl, torch.float32, "cuda")
    ref_lowp = copy.deepcopy(ref32).to(dtype)
    ours = ours.to(dtype)
    ids = torch.randint(0, 128, (2, _PREFILL + _STEPS + _CHUNK), device="cuda")
    exact = _run_sequence(ref32, ids, _STEPS, _CHUNK)
    base = _run_sequence(ref_lowp, ids, _STEPS, _CHUNK)
    flashcore.reset_call_counts()
    got = _run_sequence(ours, ids, _STEPS, _CHUNK)
    err_base, err_ours = _max_err(base, exact), _max_err(got, exact)
    floor = 1e-2 if dtype == torch.float16 else 5e-2
    _record_row(family, dtype, ref_impl, err_base, err_ours)
    assert err_ours <= 2 * err_base + floor, f"{err_ours:.3e} vs SDPA's {err_base:.3e}"
    layers = 2
    assert flashcore.call_counts() == {"flashcore": layers * (2 + _STEPS)}


@pytest.mark.gpu
def test_sdpa_dropin_compiles_fullgraph():
    q, k, v = (torch.randn(1, 4, 96, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    compiled = torch.compile(flashcore.scaled_dot_product_attention, fullgraph=True)
    out = compiled(q, k, v, is_causal=True)
    assert torch.equal(out, flashcore.fused_attention(q, k, v, causal=True))
    masked = compiled(q, k, v, attn_mask=torch.ones(96, 96, device="cuda", dtype=torch.bool))
    assert torch.allclose(masked, F.scaled_dot_product_attention(q, k, v), atol=2e-3)


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_generate_cpu(family, monkeypatch):
    """model.generate (2-D all-ones attention mask, dynamic cache): the same
    tokens as the reference model, every call served by the (reference) kernel."""
    fct.register()
    monkeypatch.setattr(fct, "fused_attention", _reference_kernel)
    monkeypatch.setattr(fsdpa, "unsupported_reason", lambda q, k, v, enable_gqa: None)
    ref_impl = next(r for n, _, r in _configs() if n == family)
    ref, ours = _pair(family, ref_impl, torch.float64, "cpu")
    ids = torch.randint(0, 128, (2, 12))
    kw = {"max_new_tokens": 10, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        a = ref.generate(ids, attention_mask=torch.ones_like(ids), **kw)
        flashcore.reset_call_counts()
        b = ours.generate(ids, attention_mask=torch.ones_like(ids), **kw)
    assert torch.equal(a, b)
    assert flashcore.call_counts() == {"flashcore": 2 * 10}
