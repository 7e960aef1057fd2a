"""CPU test of benchmarks/train_gpt.py (issue 10's training check): a tiny model
on the generated token stream learns (loss falls well below log(vocab)), the run
is reproducible from its seed, and the JSON record is written."""

import json
import math

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def train_gpt():
    return load_benchmark("train_gpt")


TINY = ["--device", "cpu", "--dtype", "fp32", "--layers", "1", "--d-model", "64", "--heads",
        "2", "--kv-heads", "1", "--vocab", "64", "--seq", "32", "--batch", "8", "--lr", "3e-3",
        "--steps", "100", "--log-every", "20"]  # fmt: skip


def test_tiny_model_learns_and_is_reproducible(train_gpt, tmp_path):
    out = tmp_path / "run.json"
    assert train_gpt.main([*TINY, "--attn", "sdpa", "--json", str(out)]) == 0
    first = json.loads(out.read_text())["results"]["sdpa"]
    losses = [loss for _, loss in first["losses"]]
    assert losses[0] > math.log(64) - 0.5  # starts near uniform
    assert losses[-1] < losses[0] - 1.0, losses  # the chain's structure is learned
    assert first["tokens_per_s"] > 0
    args = train_gpt.parse_args([*TINY, "--attn", "sdpa"])
    data = train_gpt.token_stream(args.vocab, train_gpt.DATA_TOKENS, args.seed)
    again = train_gpt.train(args, "sdpa", data)
    assert [list(x) for x in again["losses"]] == first["losses"]


def test_unknown_backend_is_named(train_gpt):
    with pytest.raises(ValueError, match=r"--attn: unknown backend 'nope'"):
        train_gpt.attention_fn("nope")


def test_forced_sdpa_backends_and_their_spread(train_gpt, capsys):
    # The calibration runs: SDPA with one backend forced each (math on the CPU),
    # and the spread between them reported.
    argv = [*TINY, "--steps", "20", "--attn", "sdpa,sdpa-math"]
    assert train_gpt.main(argv) == 0
    out = capsys.readouterr().out
    assert "max |loss difference| between SDPA backends ['sdpa', 'sdpa-math']" in out
    assert "tolerance: " in out  # the spread of the SDPA runs is the default tolerance


def test_tolerance_argument(train_gpt):
    assert train_gpt.parse_args([]).tolerance == "spread"
    assert train_gpt.parse_args(["--tolerance", "0.1"]).tolerance == 0.1
    for bad in ("nope", "-1"):
        with pytest.raises(SystemExit):
            train_gpt.parse_args(["--tolerance", bad])


def test_spread_needs_a_second_sdpa_run(train_gpt, monkeypatch, capsys):
    # A stand-in for flashcore on the CPU (SDPA under another name): compared
    # against the baseline alone, there is no spread to take the tolerance from.
    sdpa = train_gpt.attention_fn("sdpa")
    real = train_gpt.attention_fn
    monkeypatch.setattr(train_gpt, "attention_fn", lambda n: sdpa if n == "flashcore" else real(n))
    argv = [*TINY, "--steps", "10", "--attn", "sdpa,flashcore"]
    assert train_gpt.main(argv) == 2
    assert "--tolerance spread needs a second SDPA run" in capsys.readouterr().out
    assert train_gpt.main([*argv, "--tolerance", "0.5"]) == 0
