"""Dev-only: read the sm90 forward timeline probe (branch sm90-fwd-probe) out of lse."""

import torch

import flashcore
from flashcore import _debug


def run(cfg, B, H, S, D, causal, dtype=torch.float16):
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, S, H, D, device="cuda", dtype=dtype) for _ in range(3))
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    with _debug.forced_config(cfg):
        for _ in range(20):
            _o, lse = flashcore.fused_attention(q, k, v, causal=causal, return_lse=True)
        torch.cuda.synchronize()
    blk = lse[0, 0, S - 128 : S].contiguous().view(torch.int32).cpu().tolist()
    print(f"== {cfg} ({B},{H},{S},{D}) causal={causal}")
    for wg in range(2):
        a = blk[64 * wg : 64 * wg + 64]
        t0 = a[56]

        def rel(x, t0=t0):
            return (x - t0) % (1 << 32)

        print(f" wg{wg}: first S ready {rel(a[57])}, first P {rel(a[58])}")
        rows = []
        for i in range(14):
            top, turn, s, end = (rel(a[4 * i + j]) for j in range(4))
            nxt = rel(a[4 * i + 4]) if i < 13 else None
            rows.append((top, turn, s, end, nxt))
            print(
                f"  it{i:2d} top {top:7d} turn+{turn - top:5d} S+{s - turn:5d} end+{end - s:5d}"
                + (f" period {nxt - top:5d}" if nxt is not None else "")
            )
        print(f"  last PV {rel(a[59])}, stored {rel(a[60])}")


for cfg, D in (("sm90_d128_p", 128), ("sm90_d128", 128), ("sm90_d64_p", 64)):
    for shape in ((4, 16, 2048), (8, 16, 4096)):
        run(cfg, *shape, D, False)
run("sm90_d128_p", 4, 16, 2048, 128, True)
