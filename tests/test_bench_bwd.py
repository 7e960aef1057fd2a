"""CPU tests of benchmarks/bench_bwd.py's argument handling, row plan, FLOP
accounting and table (the timing itself needs a GPU)."""

import json

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_bwd")


def test_defaults_are_issue_10s_shapes(bench):
    args = bench.parse_args([])
    assert args.dtypes == ["bf16"] and args.head_dims == [128]
    assert args.backend_list == ["flash", "cudnn"]
    shapes = [(r["batch"], r["heads_q"], r["seqlen"], r["causal"]) for r in args.rows]
    assert shapes == [
        (4, 16, 2048, False),
        (4, 16, 2048, True),
        (8, 16, 4096, False),
        (8, 16, 4096, True),
        (2, 16, 16384, False),
        (2, 16, 16384, True),
    ]
    assert all(r["window"] is None and r["heads_kv"] == r["heads_q"] for r in args.rows)


def test_options(bench):
    args = bench.parse_args(
        ["--dtype", "fp16,bf16", "--head-dim", "64", "--head-dim", "128", "--quick", "--gqa",
         "32/8", "--backends", "flash,cudnn,efficient"]
    )  # fmt: skip
    assert args.dtypes == ["fp16", "bf16"] and args.head_dims == [64, 128]
    assert args.backend_list == ["flash", "cudnn", "efficient"]
    # --gqa alone replaces the default shapes; with --quick nothing else is added
    assert [(r["heads_q"], r["heads_kv"], r["seqlen"]) for r in args.rows] == [(32, 8, 8192)] * 2
    args = bench.parse_args(["--shapes", "1,8,512;2,32/8,1024", "--window", "256"])
    rows = [(r["batch"], r["heads_q"], r["heads_kv"], r["seqlen"], r["causal"], r["window"])
            for r in args.rows]  # fmt: skip
    assert rows == [
        (1, 8, 8, 512, False, None),
        (1, 8, 8, 512, True, None),
        (2, 32, 8, 1024, False, None),
        (2, 32, 8, 1024, True, None),
        (1, 8, 8, 512, True, [256, 0]),
        (2, 32, 8, 1024, True, [256, 0]),
    ]


def test_gqa_split_and_the_training_shape(bench):
    # The GPT training step's shape, with the group split forced to each divisor.
    for g in (1, 2, 4):
        args = bench.parse_args(
            ["--shapes", "8,8/2,512", "--head-dim", "128", "--gqa-split", str(g)]
        )
        assert args.gqa_split == g and args.head_dims == [128]
        rows = [(r["batch"], r["heads_q"], r["heads_kv"], r["seqlen"]) for r in args.rows]
        assert rows == [(8, 8, 2, 512)] * 2
    # MHA rows do not take part in the divisibility rule
    assert bench.parse_args(["--shapes", "1,8,512;8,8/2,512", "--gqa-split", "2"]).gqa_split == 2
    assert bench.parse_args(["--shapes", "8,8/2,512"]).gqa_split is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--dtype", "fp32"],
        ["--head-dim", "100"],
        ["--head-dim", "264"],
        ["--backends", "flash,math"],
        ["--window", "-1"],
        ["--reps", "0"],
        ["--shapes", "1,8"],
        ["--gqa", "6/4"],
        ["--gqa", "32/8", "--gqa-split", "0"],
        ["--gqa", "32/8", "--gqa-split", "3"],
        ["--shapes", "8,8/2,512;1,12/2,256", "--gqa-split", "4"],
    ],
)
def test_bad_arguments_exit(bench, argv):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)


def test_bwd_time_and_tflops(bench):
    # bwd = (fwd+bwd) - fwd; TFLOP/s = 2.5 x forward FLOPs / bwd time
    from flashcore._bench import flops

    fl = flops(4, 16, 2048, 2048, 128, False)
    e = bench.entry(1000.0, 4000.0, fl)
    assert e["bwd_us"] == 3000.0
    assert e["tflops"] == pytest.approx(2.5 * fl / 3000e-6 / 1e12)
    # causal counts the visible pairs only: a bit over half the FLOPs
    assert flops(4, 16, 2048, 2048, 128, True) == pytest.approx(fl * (2049 / 4096))


def test_table_from_json(bench, tmp_path, capsys):
    row = {
        "op": "bwd",
        "shape": [4, 16, 2048, 2048, 128],
        "dtype": "bf16",
        "causal": True,
        "window": None,
        "flashcore": {"fwd_us": 1.0, "fwd_bwd_us": 4.0, "bwd_us": 3.0, "tflops": 250.0},
        "flash": {"fwd_us": 1.0, "fwd_bwd_us": 5.0, "bwd_us": 4.0, "tflops": 187.5, "ratio": 0.75},
        "cudnn": None,
    }
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"env": {"gpu": "test"}, "rows": [row]}))
    assert bench.main(["--from-json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4,16,2048,128" in out and "250.0" in out and "0.75" in out and "n/a" in out
    assert "G=" not in out
    row["gqa_split"] = 4
    path.write_text(json.dumps({"env": {"gpu": "test"}, "rows": [row]}))
    assert bench.main(["--from-json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "G=4" in out and "det" not in out
    row["flashcore_det"] = {"fwd_us": 1.0, "fwd_bwd_us": 5.5, "bwd_us": 4.5, "tflops": 166.7}
    row["flashcore_det"]["cost"] = 1.5
    path.write_text(json.dumps({"env": {"gpu": "test"}, "rows": [row]}))
    assert bench.main(["--from-json", str(path)]) == 0
    assert "det 166.7 TFLOP/s, 1.50x time" in capsys.readouterr().out


def test_deterministic_flag(bench):
    assert bench.parse_args(["--deterministic"]).deterministic
    assert not bench.parse_args([]).deterministic


def test_eager_ab_arguments():
    from conftest import load_benchmark

    eager = load_benchmark("eager_ab")
    args = eager.parse_args(["--build", "old=/a", "--build", "new=/b"])
    assert args.build == ["old=/a", "new=/b"] and args.rounds == 6 and args.core == 3
    for bad in ([], ["--build", "old"], ["--build", "a=/a", "--rounds", "0"]):
        with pytest.raises(SystemExit):
            eager.parse_args(bad)
