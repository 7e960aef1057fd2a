"""One call each of the configs the README's shapes get, for Nsight Compute (see
README, "Profiling"). By default head dim 64 at (1,8,512), (1,8,1024) and
(8,16,4096), and head dim 128 at (1,8,1024) and (8,16,4096), fp16, non-causal:

    ncu --clock-control none -k regex:fwd_kernel --set full -o fwd \\
        python benchmarks/ncu_cases.py
    ncu -i fwd.ncu-rep --page details

--shapes "B,H,S,D;..." calls those shapes instead (H may be HQ/HKV), --causal
makes the calls causal, --dtype bf16 switches the dtype, --config NAME forces one
kernel config (flashcore._debug.forced_config) instead of the heuristic's pick,
and --cudnn adds SDPA's cuDNN forward on the same inputs after each call, so one
report holds both kernels (profile it with -k "regex:fwd_kernel|sdpa.*fprop"). For the stall
reasons behind a gap, `--set full --import-source yes` (PC sampling and source
counters; a build with FLASHCORE_LINEINFO=1 maps them to lines):

    ncu --clock-control none -k "regex:fwd_kernel|sdpa.*fprop" --set full \\
        --import-source yes -o short_rows python benchmarks/ncu_cases.py \\
        --shapes "4,16,2048,128;4,16,2048,64" --cudnn
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F
from ab_configs import parse_shapes as parse_bhs  # B,H,S (H may be HQ/HKV)

from flashcore import fused_attention
from flashcore._bench import make_inputs

DEFAULT = "1,8,512,64;1,8,1024,64;8,16,4096,64;1,8,1024,128;8,16,4096,128"


def parse_shapes(text: str) -> list[tuple[int, int, int, int, int]]:
    """ "B,H,S,D;..." (H may be HQ/HKV) -> [(batch, heads_q, heads_kv, seqlen, head_dim)]."""
    shapes = []
    for part in text.split(";"):
        bhs, _, d = part.rpartition(",")
        if bhs.count(",") != 2:
            raise ValueError(f"--shapes: expected B,H,S,D (H may be HQ/HKV), got {part!r}")
        shapes.append((*parse_bhs(bhs)[0], int(d)))
    return shapes


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default=DEFAULT)
    p.add_argument("--causal", action="store_true")
    p.add_argument("--dtype", choices=("fp16", "bf16"), default="fp16")
    p.add_argument("--cudnn", action="store_true", help="add SDPA's cuDNN forward per shape")
    p.add_argument("--config", help="force this kernel config (default: the heuristic's pick)")
    args = p.parse_args(argv)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    for b, hq, hkv, s, d in parse_shapes(args.shapes):
        q, k, v = make_inputs(b, hq, s, s, d=d, dtype=dtype, heads_kv=hkv)
        gqa = hkv != hq
        if args.config:
            from flashcore._debug import forced_config

            with forced_config(args.config):
                fused_attention(q, k, v, causal=args.causal, enable_gqa=gqa)
        else:
            fused_attention(q, k, v, causal=args.causal, enable_gqa=gqa)
        if args.cudnn:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                F.scaled_dot_product_attention(q, k, v, is_causal=args.causal, enable_gqa=gqa)
        torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
