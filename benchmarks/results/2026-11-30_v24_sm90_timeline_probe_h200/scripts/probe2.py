"""Dev-only: 6-stamp timeline (top, turn, issued, S ready, P V done, end) for 9 iterations."""

import torch

import flashcore
from flashcore import _debug


def run(cfg, B, H, S, D, causal, dtype=torch.float16):
    torch.manual_seed(0)
    q, k, v = (
        torch.randn(B, S, H, D, device="cuda", dtype=dtype).transpose(1, 2) for _ in range(3)
    )
    with _debug.forced_config(cfg):
        for _ in range(20):
            _o, lse = flashcore.fused_attention(q, k, v, causal=causal, return_lse=True)
        torch.cuda.synchronize()
    blk = lse[0, 0, S - 128 : S].contiguous().view(torch.int32).cpu().tolist()
    print(f"== {cfg} ({B},{H},{S},{D}) causal={causal}")
    t0 = blk[56]
    rel = lambda x: (x - t0) % (1 << 32)
    ev = []
    for wg in range(2):
        a = blk[64 * wg : 64 * wg + 64]
        for i in range(9):
            names = ("top", "turn", "issued", "S", "PVdone", "end")
            for j, nm in enumerate(names):
                ev.append((rel(a[6 * i + j]), f"wg{wg} it{i} {nm}"))
    ev.sort()
    prev = None
    for t, nm in ev:
        print(f"  {t:7d} (+{t - prev if prev is not None else 0:5d})  {nm}")
        prev = t


for cfg, D in (("sm90_d128_p", 128), ("sm90_d64_p", 64)):
    run(cfg, 8, 16, 4096, D, False)
