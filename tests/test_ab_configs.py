"""CPU tests of benchmarks/ab_configs.py's argument handling and round order (the
timing itself needs a GPU), and of benchmarks/plot_ab.py's drawing from its JSON."""

import json

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def ab():
    return load_benchmark("ab_configs")


def test_shapes_with_and_without_gqa(ab):
    assert ab.parse_shapes("8,16,4096;1,32/8,8192") == [(8, 16, 16, 4096), (1, 32, 8, 8192)]
    with pytest.raises(ValueError, match=r"expected B,H,S.*got '8,16'"):
        ab.parse_shapes("8,16")


def test_every_variant_leads_a_round_in_turn(ab):
    keys = ["a", "b", "c"]
    orders = [ab.rotated(keys, r) for r in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert {o[0] for o in orders} == set(keys)


def test_args(ab):
    args = ab.parse_args(["--configs", "sm90_d128,d128_m128", "--dtype", "fp16,bf16"])
    assert args.configs == ["sm90_d128", "d128_m128"] and args.dtypes == ["fp16", "bf16"]
    assert args.shape_list[0] == (4, 16, 16, 2048)
    with pytest.raises(SystemExit):
        ab.parse_args(["--configs", "x", "--rounds", "0"])


@pytest.fixture(scope="module")
def ab_bwd():
    return load_benchmark("ab_bwd_configs")


def test_bwd_args(ab_bwd):
    args = ab_bwd.parse_args(["--configs", "bwd_d64,bwd_d64_s", "--shapes", "1,32/8,8192"])
    assert args.configs == ["bwd_d64", "bwd_d64_s"] and args.dtypes == ["fp16"]
    assert args.shape_list == [(1, 32, 8, 8192)] and args.head_dim == 64
    with pytest.raises(SystemExit):
        ab_bwd.parse_args(["--configs", "bwd_d64", "--rounds", "0"])
    with pytest.raises(SystemExit):
        ab_bwd.parse_args(["--configs", ","])


@pytest.fixture(scope="module")
def plot_ab():
    return load_benchmark("plot_ab")


def test_plot_ab_draws_every_row(plot_ab, tmp_path):
    pytest.importorskip("matplotlib")
    rows = [
        {"dtype": dt, "shape": [4, 16, 16, 2048, 64], "causal": causal,
         "cfg_a": {"tflops": 400.0}, "cfg_b": {"tflops": 450.0}, "cudnn": {"tflops": 440.0}}
        for dt in ("fp16", "bf16")
        for causal in (False, True)
    ]  # fmt: skip
    src = tmp_path / "ab.json"
    src.write_text(json.dumps({"argv": [], "rows": rows}))
    assert plot_ab.variant_names(rows) == ["cfg_a", "cfg_b", "cudnn"]
    assert list(plot_ab.panels(rows)) == ["fp16", "bf16"]
    assert plot_ab.shape_label([1, 32, 8, 8192, 128], True) == "1,32/8,8192\ncausal"
    out = tmp_path / "ab.png"
    assert plot_ab.main([str(src), "--out", str(out), "--title", "t"]) == 0
    assert out.stat().st_size > 1000
