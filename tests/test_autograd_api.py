"""CPU tests of the training surface (issue 10): the fwd_train and bwd ops'
registration, fake implementations (shapes, dtypes, strides), the backward's
argument contract, the routing of fused_attention and of the sdpa drop-in, the
deterministic flag, the autograd glue and the double-backward error.

None of these need a GPU: tensors are fake CUDA tensors (FakeTensorMode), and the
autograd formulas are called directly where running the autograd engine would
need a device. The gradients themselves are checked on a GPU in tests/test_bwd.py.
"""

import types
import warnings

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from flashcore import _debug, fused_attention, ops, sdpa

KiB = 1024
# (sm_count, cc_major, cc_minor, max dynamic shared memory per block with opt-in)
DEVICES = {
    "H100/H200": {"sm_count": 132, "cc_major": 9, "cc_minor": 0, "smem_optin": 227 * KiB},
    "A100": {"sm_count": 108, "cc_major": 8, "cc_minor": 0, "smem_optin": 163 * KiB},
    "RTX3090": {"sm_count": 82, "cc_major": 8, "cc_minor": 6, "smem_optin": 99 * KiB},
    "L4": {"sm_count": 58, "cc_major": 8, "cc_minor": 9, "smem_optin": 99 * KiB},
}
# bwd's scalar arguments after (dout, q, k, v, out, lse, dlse): scale, is_causal,
# window_left, window_right, bottom_right, softcap, enable_gqa, deterministic, config
SCALARS = (0.125, True, 16, -1, True, 30.0, True, False, -1)


@pytest.fixture
def fake():
    with FakeTensorMode() as mode:
        yield mode


@pytest.fixture
def deterministic_off():
    """Restores torch's deterministic-algorithms setting after the test."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def empty(*shape, dtype=torch.float16):
    return torch.empty(*shape, dtype=dtype, device="cuda")


def train_inputs(b=2, hq=8, hkv=2, sq=33, sk=91, d=64, dtype=torch.bfloat16):
    q = empty(b, hq, sq, d, dtype=dtype)
    k, v = empty(b, hkv, sk, d, dtype=dtype), empty(b, hkv, sk, d, dtype=dtype)
    out, lse = empty(b, hq, sq, d, dtype=dtype), empty(b, hq, sq, dtype=torch.float32)
    return q, k, v, out, lse


def bwd(dout, q, k, v, out, lse, dlse=None, **over):
    names = ("scale", "causal", "wl", "wr", "br", "softcap", "gqa", "det", "config")
    scalars = dict(zip(names, SCALARS))
    scalars.update(over)
    return torch.ops.flashcore.bwd(dout, q, k, v, out, lse, dlse, *scalars.values())


# ---- registration ------------------------------------------------------------


def test_only_the_training_ops_carry_autograd_kernels():
    # The no-grad ops must stay free of a Python autograd kernel (it would run on
    # every inference call); fwd_train and bwd have their registered formulas.
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    assert has("flashcore::fwd_train", "Autograd")
    assert has("flashcore::bwd", "Autograd")
    assert not has("flashcore::fwd", "Autograd")
    assert not has("flashcore::fwd_lse", "Autograd")


# ---- fakes: shapes, dtypes, strides --------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("d", [8, 64, 128, 256])
def test_fwd_train_fake(fake, dtype, d):
    q, k, v, _, _ = train_inputs(d=d, dtype=dtype)
    out, lse = torch.ops.flashcore.fwd_train(
        q, k, v, 0.1, True, 16, -1, True, 30.0, True, False, -1
    )
    assert out.shape == q.shape and out.dtype == dtype and out.is_contiguous()
    assert lse.shape == q.shape[:3] and lse.dtype == torch.float32 and lse.is_contiguous()


def _layouts(device="cuda"):
    """name -> make(b, h, s, d): the input layouts a gradient must follow."""

    def e(*shape):
        return torch.empty(*shape, dtype=torch.float16, device=device)

    return {
        "contiguous": lambda b, h, s, d: e(b, h, s, d),
        # BSHD storage viewed as BHSD: dense, so its gradient keeps these strides.
        "bshd_view": lambda b, h, s, d: e(b, s, h, d).transpose(1, 2),
        # a slice of a packed projection: not dense but non-overlapping, so its
        # gradient is dense in the same (BSHD) order
        "packed_slice": lambda b, h, s, d: e(b, s, 3 * h, d)[:, :, h : 2 * h].transpose(1, 2),
        # one head broadcast over h (stride 0): overlapping, contiguous gradient
        "expanded": lambda b, h, s, d: e(b, 1, s, d).expand(b, h, s, d),
        # rows wider than the head dim
        "wide_rows": lambda b, h, s, d: e(b, h, s, 2 * d)[..., d:],
    }


EXPECTED_GRAD_STRIDES = {  # for (2, 6, 40, 64)
    "contiguous": (15360, 2560, 64, 1),
    "bshd_view": (15360, 64, 384, 1),
    "packed_slice": (15360, 64, 384, 1),
    "expanded": (15360, 2560, 64, 1),
    "wide_rows": (15360, 2560, 64, 1),
}


@pytest.mark.parametrize("layout", sorted(_layouts()))
def test_bwd_fake_gradients_follow_the_inputs_layout(fake, layout):
    make = _layouts()[layout]
    b, hq, hkv, sq, sk, d = 2, 6, 2, 40, 70, 64
    q, k, v = make(b, hq, sq, d), make(b, hkv, sk, d), make(b, hkv, sk, d)
    out, lse = empty(b, hq, sq, d), empty(b, hq, sq, dtype=torch.float32)
    dq, dk, dv = bwd(empty(b, hq, sq, d), q, k, v, out, lse)
    for grad, inp in ((dq, q), (dk, k), (dv, v)):
        assert grad.shape == inp.shape and grad.dtype == inp.dtype and grad.device == inp.device
        assert grad.stride(-1) == 1
    assert dq.stride() == EXPECTED_GRAD_STRIDES[layout]


@pytest.mark.parametrize("layout", sorted(_layouts()))
def test_grad_like_is_eager_empty_like(layout):
    # The fake's rule (ops._grad_like) and the op's (api/ops.cpp grad_like) are
    # aten's empty_like: on real CPU tensors it gives the strides the fake test
    # above expects, and never a strided last dim.
    t = _layouts("cpu")[layout](2, 6, 40, 64)
    g = ops._grad_like(t)
    assert g.stride() == torch.empty_like(t).stride() == EXPECTED_GRAD_STRIDES[layout]


def test_grad_like_keeps_the_last_dim_contiguous():
    # A non-dense layout empty_like reads as channels-last (one head of stride 1):
    # the gradient's last dim is still contiguous.
    odd = torch.empty_strided((2, 1, 5, 16), (80, 1, 16, 1))[:, :, :, :8]
    assert ops._grad_like(odd).stride(-1) == 1


@pytest.mark.parametrize("with_dlse", [False, True], ids=["no_dlse", "dlse"])
def test_bwd_fake_accepts_a_valid_call(fake, with_dlse):
    q, k, v, out, lse = train_inputs()
    dlse = torch.empty_like(lse) if with_dlse else None
    dq, dk, dv = bwd(torch.empty_like(out), q, k, v, out, lse, dlse)
    assert (dq.shape, dk.shape, dv.shape) == (q.shape, k.shape, v.shape)


# ---- the backward's argument contract ----------------------------------------


def _bad_bwd_cases():
    """name: (mutate(inputs dict) -> None, exception type, match)."""

    def set_(key, make):
        def mutate(x):
            x[key] = make(x)

        return mutate

    return {
        "dout_shape": (
            set_("dout", lambda x: x["dout"][:, :, :5]),
            ValueError,
            (
                r"dout.shape must be q's \(batch, heads_q, seqlen_q, head_dim\) = "
                r"\(2, 8, 33, 64\), got \(2, 8, 5, 64\)"
            ),
        ),
        "dout_dtype": (
            set_("dout", lambda x: x["dout"].half()),
            TypeError,
            r"dout.dtype must be torch.bfloat16, got torch.float16",
        ),
        "dout_last_dim": (
            set_("dout", lambda x: empty(2, 8, 64, 33, dtype=torch.bfloat16).transpose(2, 3)),
            ValueError,
            r"dout.stride\(-1\) must be 1 \(last dimension contiguous\), got 33",
        ),
        "dout_cpu": (
            set_("dout", lambda x: torch.empty(2, 8, 33, 64, dtype=torch.bfloat16)),
            ValueError,
            r"dout must be a CUDA tensor.*got device 'cpu'",
        ),
        "out_shape": (
            set_("out", lambda x: x["out"][:1]),
            ValueError,
            r"out.shape must be q's .* got \(1, 8, 33, 64\)",
        ),
        "out_dtype": (
            set_("out", lambda x: x["out"].float()),
            TypeError,
            r"out.dtype must be torch.bfloat16, got torch.float32",
        ),
        "lse_shape": (
            set_("lse", lambda x: x["lse"][:, :4]),
            ValueError,
            r"lse.shape must be \(batch, heads_q, seqlen_q\) = \(2, 8, 33\), got \(2, 4, 33\)",
        ),
        "lse_4d": (
            set_("lse", lambda x: x["lse"].unsqueeze(-1)),
            ValueError,
            r"lse.shape must be .* got \(2, 8, 33, 1\)",
        ),
        "lse_dtype": (
            set_("lse", lambda x: x["lse"].to(torch.bfloat16)),
            TypeError,
            r"lse.dtype must be torch.float32, got torch.bfloat16",
        ),
        "lse_not_contiguous": (
            set_("lse", lambda x: empty(2, 33, 8, dtype=torch.float32).transpose(1, 2)),
            ValueError,
            r"lse must be contiguous",
        ),
        "dlse_shape": (
            set_("dlse", lambda x: empty(2, 8, 32, dtype=torch.float32)),
            ValueError,
            r"dlse.shape must be \(batch, heads_q, seqlen_q\) = \(2, 8, 33\), got \(2, 8, 32\)",
        ),
        "dlse_dtype": (
            set_("dlse", lambda x: empty(2, 8, 33, dtype=torch.float16)),
            TypeError,
            r"dlse.dtype must be torch.float32, got torch.float16",
        ),
        "dlse_not_contiguous": (
            set_("dlse", lambda x: empty(2, 33, 8, dtype=torch.float32).transpose(1, 2)),
            ValueError,
            r"dlse must be contiguous",
        ),
        "q_k_heads": (
            lambda x: x.update(
                k=x["k"][:, :1].expand(2, 3, 91, 64), v=x["v"][:, :1].expand(2, 3, 91, 64)
            ),
            ValueError,
            r"multiple of k's and v's, got q 8, k and v 3",
        ),
    }


@pytest.mark.parametrize("case", sorted(_bad_bwd_cases()))
def test_bwd_contract(fake, case):
    mutate, exc, match = _bad_bwd_cases()[case]
    q, k, v, out, lse = train_inputs()
    x = {"dout": torch.empty_like(out), "q": q, "k": k, "v": v, "out": out, "lse": lse}
    x["dlse"] = None
    mutate(x)
    with pytest.raises(exc, match=match):
        bwd(x["dout"], x["q"], x["k"], x["v"], x["out"], x["lse"], x["dlse"])


def test_bwd_contract_devices(fake, monkeypatch):
    from torch._subclasses import fake_tensor
    from torch._subclasses.fake_tensor import FakeTensor

    monkeypatch.setattr(fake_tensor, "init_gpu_context", lambda device: None)
    q, k, v, out, lse = train_inputs()
    lse1 = FakeTensor(
        fake, torch.empty(lse.shape, dtype=lse.dtype, device="meta"), torch.device("cuda:1")
    )
    with pytest.raises(ValueError, match=r"lse must be on q's device, got q on cuda:0 and lse"):
        bwd(torch.empty_like(out), q, k, v, out, lse1)


def test_bwd_deterministic_is_accepted(fake):
    # deterministic mode exists: the contract refuses nothing for it, and its
    # gradients have the default mode's shapes, dtypes and strides.
    q, k, v, out, lse = train_inputs()
    dout = torch.empty_like(out)
    got = bwd(dout, q, k, v, out, lse, det=True)
    want = bwd(dout, q, k, v, out, lse, det=False)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype and g.stride() == w.stride()


@pytest.mark.parametrize("config", [-2, 99])
def test_bwd_config_out_of_range(fake, config):
    q, k, v, out, lse = train_inputs()
    with pytest.raises(
        ValueError, match=rf"forced backward config index must be in \[0, \d+\), got {config}"
    ):
        bwd(torch.empty_like(out), q, k, v, out, lse, config=config)


def test_bwd_forced_config_too_narrow_for_head_dim(fake):
    narrow = min(_debug.bwd_configs(), key=lambda c: c["head_dim"])
    q, k, v, out, lse = train_inputs(d=narrow["head_dim"] + 8)
    index = _debug.bwd_configs().index(narrow)
    with pytest.raises(
        ValueError,
        match=rf"forced backward config {narrow['name']} serves head_dim <= "
        rf"{narrow['head_dim']}, got head_dim {narrow['head_dim'] + 8}",
    ):
        bwd(torch.empty_like(out), q, k, v, out, lse, config=index)


def test_bwd_forced_sm90_config_serves_the_default_mode_with_or_without_a_split(fake):
    # The Hopper backward configs add dQ with atomics: a forced one refuses the
    # deterministic mode. A forced GQA split (4 query heads per kv head here)
    # passes the contract as it does for the mma.sync configs.
    configs = _debug.bwd_configs()
    sm90 = [i for i, c in enumerate(configs) if c["sm90"]]
    assert sm90
    q, k, v, out, lse = train_inputs()  # head dim 64: every tile width serves it
    dout = torch.empty_like(out)
    scalars = SCALARS[:-2]
    for index in sm90:
        name = configs[index]["name"]
        with pytest.raises(
            ValueError,
            match=rf"forced backward config {name} has no deterministic mode; force an "
            r"mma\.sync backward config or use deterministic=False",
        ):
            bwd(dout, q, k, v, out, lse, det=True, config=index)
        # the default mode, with the heuristic's split or a forced one, passes the contract
        for split in (-1, 1):
            dq, dk, dv = torch.ops.flashcore.bwd(
                dout, q, k, v, out, lse, None, *scalars, False, index, split
            )
            assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
        # a forced split > 1: its builds have no softcap (SCALARS has 30.0)
        with pytest.raises(
            ValueError,
            match=rf"forced backward config {name} with a forced gqa_split > 1 has no softcap "
            r"build; got gqa_split 2 and softcap 30",
        ):
            torch.ops.flashcore.bwd(dout, q, k, v, out, lse, None, *scalars, False, index, 2)
        no_cap = scalars[:5] + (0.0,) + scalars[6:]
        dq, dk, dv = torch.ops.flashcore.bwd(
            dout, q, k, v, out, lse, None, *no_cap, False, index, 2
        )
        assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape


def test_fwd_train_contract_is_the_forwards(fake):
    q, k, v, _, _ = train_inputs()
    with pytest.raises(ValueError, match=r"pass enable_gqa=True"):
        torch.ops.flashcore.fwd_train(q, k, v, 0.1, False, -1, -1, False, 0.0, False, False, -1)
    with pytest.raises(ValueError, match=r"pass enable_gqa=True"):
        torch.ops.flashcore.fwd_train(q, k, v, 0.1, False, -1, -1, False, 0.0, False, True, -1)
    # deterministic=True adds no rule
    out, lse = torch.ops.flashcore.fwd_train(
        q, k, v, 0.1, False, -1, -1, False, 0.0, True, True, -1
    )
    assert out.shape == q.shape and lse.shape == q.shape[:3]


# ---- routing in fused_attention -------------------------------------------------


def _grad_fn_name(t):
    return type(t.grad_fn).__name__ if t.grad_fn is not None else None


@pytest.mark.parametrize("which", ["q", "k", "v"])
def test_any_grad_requiring_input_routes_to_fwd_train(fake, which):
    q, k, v, _, _ = train_inputs()
    {"q": q, "k": k, "v": v}[which].requires_grad_(True)
    out = fused_attention(q, k, v, causal=True, enable_gqa=True)
    assert "fwd_train" in _grad_fn_name(out)
    out, lse = fused_attention(q, k, v, enable_gqa=True, return_lse=True)
    # With return_lse=True the lse is an output of the same node: differentiable.
    assert lse.requires_grad and lse.grad_fn is out.grad_fn
    assert lse.shape == q.shape[:3] and lse.dtype == torch.float32


def test_calls_without_grad_keep_the_plain_forward(fake):
    q, k, v, _, _ = train_inputs()
    out = fused_attention(q, k, v, enable_gqa=True)  # nothing requires grad
    assert out.grad_fn is None
    q.requires_grad_(True)
    with torch.no_grad():
        assert fused_attention(q, k, v, enable_gqa=True).grad_fn is None
    with torch.inference_mode():
        assert fused_attention(q, k, v, enable_gqa=True).grad_fn is None
    # the forward is deterministic: deterministic=True is no error without grad
    with torch.no_grad():
        fused_attention(q, k, v, enable_gqa=True, deterministic=True)


def test_training_on_cpu_tensors_says_a_cuda_gpu_is_needed():
    q = torch.empty(2, 4, 10, 64, dtype=torch.float16, requires_grad=True)
    k = v = torch.empty(2, 4, 12, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"q must be a CUDA tensor.*got device 'cpu'"):
        fused_attention(q, k, v)


def test_training_contract_errors_are_the_forwards(fake):
    q, k, v, _, _ = train_inputs()
    q.requires_grad_(True)
    with pytest.raises(ValueError, match=r"pass enable_gqa=True"):
        fused_attention(q, k, v)
    with pytest.raises(ValueError, match=r"window values must be >= 0"):
        fused_attention(q, k, v, enable_gqa=True, window=(-3, 0))


# ---- the deterministic flag --------------------------------------------------


def _saved_deterministic(out):
    """The backward mode fwd_train's autograd node saved (ctx.scalars' last)."""
    return out.grad_fn.scalars[-1]


def test_deterministic_true_records_the_deterministic_backward(fake):
    q, k, v, _, _ = train_inputs()
    q.requires_grad_(True)
    out = fused_attention(q, k, v, enable_gqa=True, deterministic=True)
    assert "fwd_train" in _grad_fn_name(out)
    assert _saved_deterministic(out) is True
    out = fused_attention(q, k, v, enable_gqa=True, deterministic=False)
    assert _saved_deterministic(out) is False


@pytest.mark.parametrize("value", ["yes", 1, torch.tensor(True)])
def test_deterministic_type(fake, value):
    q, k, v, _, _ = train_inputs()
    q.requires_grad_(True)
    with pytest.raises(TypeError, match=r"deterministic must be a bool or None, got"):
        fused_attention(q, k, v, enable_gqa=True, deterministic=value)


def test_deterministic_none_follows_torch(fake, deterministic_off):
    q, k, v, _, _ = train_inputs()
    q.requires_grad_(True)
    torch.use_deterministic_algorithms(False)
    assert _saved_deterministic(fused_attention(q, k, v, enable_gqa=True)) is False
    out = fused_attention(q, k, v, enable_gqa=True, deterministic=True)
    assert _saved_deterministic(out) is True
    torch.use_deterministic_algorithms(True)
    assert _saved_deterministic(fused_attention(q, k, v, enable_gqa=True)) is True
    # an explicit False overrides the global flag
    out = fused_attention(q, k, v, enable_gqa=True, deterministic=False)
    assert _saved_deterministic(out) is False
    # warn_only=True: the deterministic backward exists, so it runs, without a warning
    torch.use_deterministic_algorithms(True, warn_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fused_attention(q, k, v, enable_gqa=True)
    assert out.requires_grad and _saved_deterministic(out) is True


def test_docstring_states_the_determinism_default():
    doc = fused_attention.__doc__
    assert "deterministic" in doc and "atomic adds" in doc
    assert "bitwise identical" in doc and "warn_only" in doc
    assert "use_deterministic_algorithms" in doc
    assert "not available yet" not in doc and "NotImplementedError" not in doc


# ---- the autograd glue ---------------------------------------------------------


class _Ctx(types.SimpleNamespace):
    """Stands in for the autograd context the formulas receive."""

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def set_materialize_grads(self, value):
        self.materialize_grads = value


def _run_glue(monkeypatch, dout_of, dlse_of):
    """setup_context then backward on fake tensors, with bwd recorded."""
    calls = []

    def fake_bwd(*args):
        calls.append(args)
        q, k, v = args[1:4]
        return ops._grad_like(q), ops._grad_like(k), ops._grad_like(v)

    monkeypatch.setattr(ops, "_bwd", fake_bwd)
    q, k, v, _, _ = train_inputs()
    inputs = (q, k, v, 0.1, True, 16, -1, True, 30.0, True, False, 7)
    out, lse = torch.ops.flashcore.fwd_train(*inputs)
    ctx = _Ctx()
    ops._fwd_train_setup_context(ctx, inputs, (out, lse))
    assert ctx.saved_tensors == (q, k, v, out, lse)
    assert ctx.materialize_grads is False
    grads = ops._fwd_train_backward(ctx, dout_of(out), dlse_of(lse))
    assert len(grads) == 12 and all(g is None for g in grads[3:])
    assert [g.shape for g in grads[:3]] == [q.shape, k.shape, v.shape]
    (args,) = calls
    assert args[1:6] == (q, k, v, out, lse)
    # the forward's scalars, then the backward config and the GQA group split
    # (the heuristics': -1)
    assert args[7:] == (0.1, True, 16, -1, True, 30.0, True, False, -1, -1)
    return args[0], args[6]


def test_backward_passes_dout_and_dlse(fake, monkeypatch):
    dout, dlse = _run_glue(monkeypatch, torch.empty_like, torch.empty_like)
    assert dout.stride(-1) == 1 and dlse.is_contiguous()


def test_backward_without_lse_gradient_passes_none(fake, monkeypatch):
    _, dlse = _run_glue(monkeypatch, torch.empty_like, lambda lse: None)
    assert dlse is None


def test_backward_of_a_loss_on_lse_alone_uses_zero_dout(fake, monkeypatch):
    dout, dlse = _run_glue(monkeypatch, lambda out: None, torch.empty_like)
    assert dout.shape == (2, 8, 33, 64) and dout.dtype == torch.bfloat16
    assert dlse is not None


def test_backward_makes_strided_gradients_contiguous(fake, monkeypatch):
    # out.sum()'s gradient is one element expanded (every stride 0)
    dout, dlse = _run_glue(
        monkeypatch,
        lambda out: torch.empty((), dtype=out.dtype, device="cuda").expand(out.shape),
        lambda lse: torch.empty((), dtype=lse.dtype, device="cuda").expand(lse.shape),
    )
    assert dout.is_contiguous() and dlse.is_contiguous()


def test_forced_bwd_config_is_read_at_the_forward(fake, monkeypatch):
    seen = []
    monkeypatch.setattr(ops, "_bwd", lambda *a: seen.append(a[-2]) or a[1:4])
    q, k, v, _, _ = train_inputs()
    inputs = (q, k, v, 0.1, False, -1, -1, False, 0.0, True, False, -1)
    ctx = _Ctx()
    last = _debug.bwd_configs()[-1]["name"]
    with _debug.forced_bwd_config(last):
        ops._fwd_train_setup_context(ctx, inputs, torch.ops.flashcore.fwd_train(*inputs))
    ops._fwd_train_backward(ctx, torch.empty(2, 8, 33, 64, dtype=torch.bfloat16), None)
    assert seen == [len(_debug.bwd_configs()) - 1] and ops._FORCED_BWD_CONFIG == -1


def test_forced_bwd_gqa_split_is_read_at_the_forward(fake, monkeypatch):
    seen = []
    monkeypatch.setattr(ops, "_bwd", lambda *a: seen.append(a[-1]) or a[1:4])
    q, k, v, _, _ = train_inputs()
    inputs = (q, k, v, 0.1, False, -1, -1, False, 0.0, True, False, -1)
    ctx = _Ctx()
    with _debug.forced_bwd_gqa_split(2):
        ops._fwd_train_setup_context(ctx, inputs, torch.ops.flashcore.fwd_train(*inputs))
    ops._fwd_train_backward(ctx, torch.empty(2, 8, 33, 64, dtype=torch.bfloat16), None)
    assert seen == [2] and ops._FORCED_BWD_GQA_SPLIT == -1


@pytest.mark.parametrize("parts", [0, -1, 2.0, True])
def test_forced_bwd_gqa_split_needs_a_positive_int(parts):
    with (
        pytest.raises(ValueError, match=r"forced_bwd_gqa_split: parts must be an int >= 1"),
        _debug.forced_bwd_gqa_split(parts),
    ):
        pass
    assert ops._FORCED_BWD_GQA_SPLIT == -1


@pytest.mark.parametrize("gqa_split", [-2, 0, 3, 8])
def test_bwd_gqa_split_must_divide_the_group(fake, gqa_split):
    q, k, v, out, lse = train_inputs()  # 8 query heads over 2 kv heads: groups of 4
    with pytest.raises(
        ValueError,
        match=rf"forced gqa_split must be a divisor of heads_q / heads_kv = 4, got {gqa_split}",
    ):
        bwd(torch.empty_like(out), q, k, v, out, lse, gqa_split=gqa_split)


@pytest.mark.parametrize("gqa_split", [-1, 1, 2, 4])
def test_bwd_gqa_split_accepts_the_groups_divisors(fake, gqa_split):
    q, k, v, out, lse = train_inputs()
    dq, dk, dv = bwd(torch.empty_like(out), q, k, v, out, lse, gqa_split=gqa_split)
    assert (dq.shape, dk.shape, dv.shape) == (q.shape, k.shape, v.shape)


def test_forced_bwd_config_unknown_name():
    with (
        pytest.raises(ValueError, match=r"unknown backward config 'nope'; compiled: bwd_d64"),
        _debug.forced_bwd_config("nope"),
    ):
        pass


def test_backward_reraises_the_ops_tagged_refusals(fake, monkeypatch):
    def refuse(*args):
        raise RuntimeError("[flashcore:ValueError] fused_attention: forced backward config x")

    monkeypatch.setattr(ops, "_bwd", refuse)
    q, k, v, _, _ = train_inputs()
    inputs = (q, k, v, 0.1, False, -1, -1, False, 0.0, True, False, -1)
    ctx = _Ctx()
    ops._fwd_train_setup_context(ctx, inputs, torch.ops.flashcore.fwd_train(*inputs))
    with pytest.raises(ValueError, match=r"^fused_attention: forced backward config x$"):
        ops._fwd_train_backward(ctx, torch.empty(2, 8, 33, 64, dtype=torch.bfloat16), None)


def test_double_backward_raises():
    with pytest.raises(RuntimeError, match=r"double backward .* is not supported"):
        ops._bwd_backward(_Ctx(), None, None, None)


# ---- the sdpa drop-in --------------------------------------------------------


@pytest.fixture
def capable_gpu(monkeypatch):
    """cuda:0 is an H100 to the drop-in's device checks (no GPU is read)."""
    monkeypatch.setitem(sdpa._capable, 0, True)
    monkeypatch.setattr(sdpa, "_bwd_served", {})
    monkeypatch.setattr(_debug, "device_desc", lambda device=None: DEVICES["H100/H200"])


def test_sdpa_serves_training_calls(fake, capable_gpu, deterministic_off):
    torch.use_deterministic_algorithms(False)
    q, k, v, _, _ = train_inputs(d=128)
    q.requires_grad_(True)
    assert sdpa.unsupported_reason(q, k, v, enable_gqa=True) is None


def test_sdpa_falls_back_for_training_beyond_the_backward(
    fake, capable_gpu, deterministic_off, monkeypatch
):
    # an L4 (99 KB of shared memory per block): no backward config above 128
    monkeypatch.setattr(_debug, "device_desc", lambda device=None: DEVICES["L4"])
    torch.use_deterministic_algorithms(False)
    q, k, v, _, _ = train_inputs(d=136)
    assert sdpa.unsupported_reason(q, k, v, enable_gqa=True) is None  # inference: served
    k.requires_grad_(True)
    assert sdpa.unsupported_reason(q, k, v, enable_gqa=True) == (
        "autograd with a head dim or GPU flashcore's backward does not serve"
    )
    with torch.no_grad():
        assert sdpa.unsupported_reason(q, k, v, enable_gqa=True) is None


@pytest.mark.parametrize("warn_only", [False, True])
def test_sdpa_serves_training_in_deterministic_mode(
    fake, capable_gpu, deterministic_off, warn_only
):
    # flashcore's backward has a deterministic mode, which fused_attention's
    # deterministic=None picks under use_deterministic_algorithms(True)
    q, k, v, _, _ = train_inputs(d=64)
    v.requires_grad_(True)
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    assert sdpa.unsupported_reason(q, k, v, enable_gqa=True) is None
    out = sdpa.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    assert "fwd_train" in _grad_fn_name(out) and _saved_deterministic(out) is True
    with torch.no_grad():  # the forward is deterministic
        assert sdpa.unsupported_reason(q, k, v, enable_gqa=True) is None


@pytest.mark.parametrize("device", ["H100/H200", "A100"])
def test_sdpa_bwd_head_dim_rule_mirrors_the_heuristic(device):
    # sdpa.MAX_BWD_HEAD_DIM is the Python mirror of choose_bwd_config's coverage
    # on the GPUs with the backward configs' shared memory (used while
    # torch.compile traces): they must agree on every head dim and shape, in
    # both modes and whether or not the inputs suit TMA (the Hopper configs
    # change which config serves, not whether one does).
    dev = DEVICES[device]
    for d in range(8, 257, 8):
        for shape in [(1, 1, 1, 1), (1, 8, 1000, 17), (4, 16, 2048, 2048), (2, 32, 8192, 8192)]:
            for kw in ({}, {"deterministic": True}, {"tma_ok": False}, {"heads_kv": 1}):
                served = _debug.bwd_heuristic(*shape, d, **dev, **kw) is not None
                assert served == (d <= sdpa.MAX_BWD_HEAD_DIM), (device, d, shape, kw)


@pytest.mark.parametrize("device", sorted(DEVICES))
def test_sdpa_asks_the_heuristic_in_eager_mode(fake, monkeypatch, device):
    # In eager mode the drop-in asks the heuristic itself, once per (device,
    # head dim): on a 99 KB GPU training beyond head dim 128 falls back.
    monkeypatch.setitem(sdpa._capable, 0, True)
    monkeypatch.setattr(sdpa, "_bwd_served", {})
    monkeypatch.setattr(_debug, "device_desc", lambda device_=None: DEVICES[device])
    for d in (64, 128, 136, 256):
        q, k, v, _, _ = train_inputs(d=d)
        q.requires_grad_(True)
        served = sdpa.unsupported_reason(q, k, v, enable_gqa=True) is None
        assert served == (_debug.bwd_heuristic(1, 1, 1, 1, d, **DEVICES[device]) is not None)
    assert set(sdpa._bwd_served) == {(0, 64), (0, 128), (0, 136), (0, 256)}


def test_bwd_workspace_is_sized_by_the_kernel_side():
    # The one workspace block holds dq_accum (at least one fp32 per q element)
    # and two rows per query; sizes grow with the shape.
    small = _debug.bwd_workspace_elems(1, 2, 2, 100, 100, 64, "bwd_d64")
    big = _debug.bwd_workspace_elems(2, 2, 2, 100, 100, 64, "bwd_d64")
    assert small >= 1 * 2 * 100 * 64 + 2 * 1 * 2 * 100
    assert big > small and small % 64 == 0


def test_bwd_workspace_grows_by_the_gqa_partials():
    # gqa_split 1 (and the default) allocates no partials; G > 1 adds fp32 dK and
    # dV partials of (G, batch, heads_kv, seqlen_k, head_dim) each, 64-aligned.
    shape = (3, 8, 2, 100, 333, 40)
    plain = _debug.bwd_workspace_elems(*shape, "bwd_d64")
    assert _debug.bwd_workspace_elems(*shape, "bwd_d64", 1) == plain
    for g in (2, 4):
        partial = g * 3 * 2 * 333 * 40
        padded = (partial + 63) // 64 * 64
        assert _debug.bwd_workspace_elems(*shape, "bwd_d64", g) == plain + 2 * padded, g


def _built_with_sm90a():
    import flashcore

    return "sm_90a" in flashcore.build_info()["sass_archs"]


def test_bwd_heuristic_through_debug():
    # The Hopper backward on H100 / H200 for TMA-readable default-mode calls
    # whose grid (batch x kv heads x 128-key blocks) fills the 132 SMs, in a
    # build with sm_90a; mma.sync otherwise (tests/test_bwd_configs.py has the
    # table). The defaults (heads_kv = heads_q, tma_ok, not deterministic, no
    # forced split) keep the old callers' meaning.
    h100 = DEVICES["H100/H200"]
    hopper = _built_with_sm90a()
    big = (4, 16, 2048, 2048, 128)  # 1024 blocks
    sm90_or_mma = "sm90_bwd_d128" if hopper else "bwd_d128"
    assert _debug.bwd_heuristic(*big, **h100) == sm90_or_mma
    assert _debug.bwd_heuristic(*big[:4], 64, **h100) == ("sm90_bwd_d64" if hopper else "bwd_d64")
    assert _debug.bwd_heuristic(*big[:4], 256, **h100) == "bwd_d256"
    assert _debug.bwd_heuristic(*big, **h100, deterministic=True) == "bwd_d128"
    assert _debug.bwd_heuristic(*big, **h100, tma_ok=False) == "bwd_d128"
    assert _debug.bwd_heuristic(*big, **h100, heads_kv=4, gqa_split=2) == "bwd_d128"
    for device in ("A100", "RTX3090", "L4"):
        want = "bwd_d128" if device == "A100" else "bwd_d128_s"
        assert _debug.bwd_heuristic(*big, **DEVICES[device]) == want, device
    # The GPT training step: 8 x 2 kv heads x 4 key blocks = 64 blocks, 48% of a
    # wave, the Hopper rule's bound; with heads_kv left at heads_q (8) the grid
    # is 256 blocks. Half the batch (32 blocks) is below the bound: so heads_kv
    # must reach the heuristic.
    gpt = (8, 8, 512, 512, 128)
    assert _debug.bwd_heuristic(*gpt, **h100, heads_kv=2) == sm90_or_mma
    assert _debug.bwd_heuristic(*gpt, **h100) == sm90_or_mma
    assert _debug.bwd_heuristic(4, 8, 512, 512, 128, **h100, heads_kv=2) == "bwd_d128"
    assert _debug.bwd_heuristic(4, 8, 512, 512, 128, **h100) == sm90_or_mma


def test_chosen_bwd_config_reads_the_tensors_and_the_mode(monkeypatch):
    # chosen_bwd_config mirrors the op: kv heads from k, TMA readiness from the
    # tensors, the mode and a forced split from its arguments (CPU tensors with
    # an H100's numbers: only metadata is read).
    monkeypatch.setattr(_debug, "device_desc", lambda device=None: DEVICES["H100/H200"])
    hopper = _built_with_sm90a()
    q = torch.empty(4, 16, 2048, 128, dtype=torch.bfloat16)
    k = torch.empty(4, 16, 2048, 128, dtype=torch.bfloat16)
    sm90 = "sm90_bwd_d128" if hopper else "bwd_d128"
    assert _debug.chosen_bwd_config(q, k) == sm90
    assert _debug.chosen_bwd_config(q, k, v=k, dout=q) == sm90
    assert _debug.chosen_bwd_config(q, k, True) == "bwd_d128"
    assert _debug.chosen_bwd_config(q, k, deterministic=True) == "bwd_d128"
    assert _debug.chosen_bwd_config(q, k, gqa_split=2) == "bwd_d128"
    assert _debug.chosen_bwd_gqa_split(q, k) == 1
    # Rows 130 elements apart are not 16-byte aligned: no TMA, mma.sync.
    unaligned = torch.empty(4, 16, 2048, 130, dtype=torch.bfloat16)[..., :128]
    assert _debug.chosen_bwd_config(q, unaligned) == "bwd_d128"
    assert _debug.chosen_bwd_config(q, k, v=unaligned) == "bwd_d128"
    assert _debug.chosen_bwd_config(q, k, dout=unaligned) == "bwd_d128"
    # A broadcast (stride 0) head dim: no TMA either.
    assert _debug.chosen_bwd_config(q, k[:, :1].expand(4, 16, 2048, 128)) == "bwd_d128"
    # The GPT training step (8 x 8/2 heads, 512 tokens): the Hopper config at
    # its grid bound, split in two parts like mma.sync's G = 2 (the deterministic
    # mode's, or without sm_90a); with softcap the Hopper config has no split.
    q = torch.empty(8, 8, 512, 128, dtype=torch.bfloat16)
    k = torch.empty(8, 2, 512, 128, dtype=torch.bfloat16)
    assert _debug.chosen_bwd_config(q, k) == sm90
    assert _debug.chosen_bwd_gqa_split(q, k) == 2
    assert _debug.chosen_bwd_gqa_split(q, k, softcap=30.0) == (1 if hopper else 2)
    assert _debug.chosen_bwd_config(q, k, deterministic=True) == "bwd_d128"
    assert _debug.chosen_bwd_gqa_split(q, k, deterministic=True) == 2


def test_bwd_gqa_split_heuristic_through_debug():
    # The GPT training step (8 x 8/2 heads, 512 keys, head dim 128): 64 blocks
    # unsplit. On 132 SMs two parts are one wave of half-work blocks (four tie
    # with two waves: the smaller G); on 108 SMs two parts take two waves, four
    # take three of quarter-work blocks. MHA never splits.
    args = (8, 8, 2, 512, 512, 128, "bwd_d128")
    assert _debug.bwd_gqa_split_heuristic(*args, **DEVICES["H100/H200"]) == 2
    assert _debug.bwd_gqa_split_heuristic(*args, **DEVICES["A100"]) == 4
    assert (
        _debug.bwd_gqa_split_heuristic(8, 8, 8, 512, 512, 128, "bwd_d128", **DEVICES["A100"]) == 1
    )
    with pytest.raises(ValueError, match=r"unknown backward config 'nope'"):
        _debug.bwd_gqa_split_heuristic(*args[:-1], "nope", **DEVICES["A100"])
