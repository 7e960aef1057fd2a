"""CPU check of mask.cuh's tile ranges (the forward's KeyRange, the backward's
QueryRange, the shared tile_needs_mask): tests/cuda/mask_ranges.cu, built by
nvcc as a host program, compares them with brute force over random problems of
every mask kind (causal both alignments, windows, Sq != Sk, tails) and tile
shapes. The ranges are exact: a tile is visited iff it holds a visible pair, and
masked iff it holds a hidden one. tile_visible_cols (the Hopper forward's first
key step per warpgroup) never cuts off a visible key."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "tests" / "cuda" / "mask_ranges.cu"
INCLUDE = ROOT / "src" / "flashcore" / "csrc" / "include"


def test_tile_ranges_match_brute_force(nvcc, tmp_path):
    exe = tmp_path / "mask_ranges"
    build = subprocess.run(
        [nvcc, "-std=c++17", f"-I{INCLUDE}", str(PROGRAM), "-o", str(exe)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("ok: "), run.stdout
