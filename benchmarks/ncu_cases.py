"""One call each of the shipped kernel configs at the issue's profiling shapes,
(1,8,512) and (8,16,4096), and at (1,8,1024), for Nsight Compute (see README,
"Profiling"):

    ncu --clock-control none -k regex:fwd_kernel --set full -o fwd \\
        python benchmarks/ncu_cases.py
    ncu -i fwd.ncu-rep --page details
"""

import torch

from flashcore import fused_attention
from flashcore._bench import make_inputs

for b, h, s in [(1, 8, 512), (1, 8, 1024), (8, 16, 4096)]:
    q, k, v = make_inputs(b, h, s, s)
    fused_attention(q, k, v)
    torch.cuda.synchronize()
