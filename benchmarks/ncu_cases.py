"""One call each of the shipped kernel configs at the issue's profiling shapes,
for Nsight Compute (see README, "Profiling"):

    ncu --clock-control none -k regex:fwd_kernel --section SpeedOfLight \\
        --section Occupancy --section LaunchStats --section WarpStateStats \\
        --section ComputeWorkloadAnalysis python benchmarks/ncu_cases.py
"""

import torch

from flashcore import fused_attention
from flashcore._bench import make_inputs

for b, h, s in [(1, 8, 512), (8, 16, 4096)]:
    q, k, v = make_inputs(b, h, s, s)
    fused_attention(q, k, v)
    torch.cuda.synchronize()
