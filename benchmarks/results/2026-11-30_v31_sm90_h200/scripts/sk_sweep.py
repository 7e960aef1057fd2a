"""Session 26 probe: graph time per call against seqlen_k at a fixed query tiling,
ours (forced configs) and SDPA cuDNN, non-causal, interleaved rounds; prints the
least-squares line time = a * (key tiles of 128) + b per variant. (6,16,2112) is 1056
tiles of 192 rows, 8 full waves on 132 SMs (no tail split, no partial tile)."""

import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from flashcore import _bench, _debug, fused_attention


def fit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return a, my - a * mx


def main():
    configs = sys.argv[1].split(",")
    b, h, sq = (int(x) for x in sys.argv[2].split(","))
    sks = [int(x) for x in sys.argv[3].split(",")]
    d = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    rounds = 3
    res = {c: [] for c in configs + ["cudnn"]}
    for sk in sks:
        q, _, _ = _bench.make_inputs(b, h, sq, sq, d, dtype=torch.float16)
        _, k, v = _bench.make_inputs(b, h, sk, sk, d, dtype=torch.float16)
        fns = {}
        for c in configs:

            def f(c=c, q=q, k=k, v=v):
                with _debug.forced_config(c):
                    return fused_attention(q, k, v)

            fns[c] = f

        def cud(q=q, k=k, v=v):
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                return F.scaled_dot_product_attention(q, k, v)

        fns["cudnn"] = cud
        times = {key: [] for key in fns}
        with torch.no_grad():
            for r in range(rounds):
                keys = list(fns)
                keys = keys[r % len(keys) :] + keys[: r % len(keys)]
                for key in keys:
                    times[key].append(_bench.graph_time_us(fns[key], 10, 5))
        line = []
        for key in fns:
            t = statistics.median(times[key])
            res[key].append(t)
            line.append(f"{key} {t:8.2f}")
        print(f"{b},{h},{sq} sk={sk}: " + "  ".join(line), flush=True)
    xs = [sk / 128 for sk in sks]
    for key, ys in res.items():
        a, c = fit(xs, ys)
        print(f"fit {key}: {a:.3f} us per key tile of 128 (all rows), intercept {c:.2f} us")


if __name__ == "__main__":
    main()
