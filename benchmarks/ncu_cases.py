"""One call each of the configs the README's shapes get, for Nsight Compute (see
README, "Profiling"): head dim 64 at (1,8,512), (1,8,1024) and (8,16,4096), and
head dim 128 at (1,8,1024) and (8,16,4096), fp16, non-causal:

    ncu --clock-control none -k regex:fwd_kernel --set full -o fwd \\
        python benchmarks/ncu_cases.py
    ncu -i fwd.ncu-rep --page details
"""

import torch

from flashcore import fused_attention
from flashcore._bench import make_inputs

for b, h, s, d in [(1, 8, 512, 64), (1, 8, 1024, 64), (8, 16, 4096, 64), (1, 8, 1024, 128),
                   (8, 16, 4096, 128)]:  # fmt: skip
    q, k, v = make_inputs(b, h, s, s, d=d)
    fused_attention(q, k, v)
    torch.cuda.synchronize()
