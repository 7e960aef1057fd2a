"""Session 26 call 12: softcap calls (causal and not) of the persistent Hopper configs,
whose masked softcap kernels' code grew with v31 (NOTES v31), in one build per process:
graph time per call, medians of interleaved rounds. python softcap_ab.py ROUNDS"""

import statistics
import sys

import torch

from flashcore import _bench, _debug, fused_attention

CASES = [("sm90_d64_p", 64), ("sm90_d128_p", 128)]


def main():
    rounds = int(sys.argv[1])
    for cfg, d in CASES:
        for b, h, s in ((4, 16, 2048), (8, 16, 4096)):
            q, k, v = _bench.make_inputs(b, h, s, s, d, dtype=torch.bfloat16)
            for causal in (True, False):

                def call(q=q, k=k, v=v, causal=causal, cfg=cfg):
                    with _debug.forced_config(cfg):
                        return fused_attention(q, k, v, causal=causal, softcap=30.0)

                ts = [_bench.graph_time_us(call, 3, 3) for _ in range(rounds)]
                fl = _bench.flops(b, h, s, s, d, causal, None, "top_left")
                t = statistics.median(ts)
                print(
                    f"bf16 softcap {cfg} {b},{h},{s},{d} causal={causal}: {t:8.2f} us {fl / t / 1e6:6.1f} TFLOP/s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
