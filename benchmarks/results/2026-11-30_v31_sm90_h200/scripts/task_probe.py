"""Session 26: read the task probe (branch sm90-fwd-task-probe: thread 0 of each
consumer warpgroup stamps %globaltimer and %clock per task into lse, viewed as
uint32) and summarize the persistent kernel's per-block timeline.
python task_probe.py CONFIG B,H,SQ [SK]"""

import statistics
import sys

import torch

from flashcore import _bench, _debug, fused_attention


def main():
    cfg = sys.argv[1]
    b, h, sq = (int(x) for x in sys.argv[2].split(","))
    sk = int(sys.argv[3]) if len(sys.argv) > 3 else sq
    d = 64 if "d64" in cfg else 128
    q, _, _ = _bench.make_inputs(b, h, sq, sq, d, dtype=torch.float16)
    _, k, v = _bench.make_inputs(b, h, sk, sk, d, dtype=torch.float16)
    runs = []
    with _debug.forced_config(cfg):
        for rep in range(6):
            _, lse = fused_attention(q, k, v, return_lse=True)
            torch.cuda.synchronize()
            runs.append(
                lse.view(torch.int32)
                .flatten()[: 132 * 16 * 4 * 8]
                .view(132, 16, 4, 8)
                .cpu()
                .to(torch.int64)
                & 0xFFFFFFFF
            )
    P = runs[-1]
    g0 = int(P[:, 15, 3, 0].min())
    rel = lambda x: ((int(x) - g0) & 0xFFFFFFFF) / 1000.0  # us
    ends = []
    starts_by_index = {}
    for blk in range(132):
        entry = rel(P[blk, 15, 3, 0])
        exit_ = max(rel(P[blk, 15, 3, 2 + w]) for w in range(3 if "w3" in cfg else 2))
        ends.append(exit_)
        line = [f"blk {blk:3d} entry {entry:6.2f}"]
        for i in range(15):
            w = 0
            gt = int(P[blk, i, w, 1])
            if gt == 0:
                break
            task = int(P[blk, i, w, 0])
            s_us = rel(P[blk, i, w, 1])
            e_us = rel(P[blk, i, w, 5])
            starts_by_index.setdefault(i, []).append(s_us)
            line.append(f"t{task}@{s_us:.1f}-{e_us:.1f}")
        if blk < 12 or blk % 20 == 0:
            print(" ".join(line) + f" exit {exit_:.2f}")
    print(
        f"block exit: min {min(ends):.2f} median {statistics.median(ends):.2f} max {max(ends):.2f} us"
    )
    for i in sorted(starts_by_index):
        xs = starts_by_index[i]
        print(
            f"task #{i}: start min {min(xs):.2f} median {statistics.median(xs):.2f} max {max(xs):.2f} (n={len(xs)})"
        )
    bm = {c["name"]: c for c in _debug.configs()}[cfg]["block_m"]
    tiles = b * h * -(-sq // bm)
    first, parts, ntasks, ranges = _debug.sm90_tail_split(tiles, 132, -(-sk // 128))
    print(f"tiles {tiles}, first split task {first}, parts {parts} {ranges}, tasks {ntasks}")
    # durations per task kind and index, warpgroup 0, in clocks and us
    for kind in ("whole", "split"):
        for i in range(15):
            d_us, d_clk, e_clk = [], [], []
            for blk in range(132):
                if int(P[blk, i, 0, 1]) == 0:
                    continue
                is_split = parts > 1 and int(P[blk, i, 0, 0]) >= first
                if is_split != (kind == "split"):
                    continue
                s_us = rel(P[blk, i, 0, 1])
                e_us = rel(P[blk, i, 0, 5])
                d_us.append(e_us - s_us)
                d_clk.append((int(P[blk, i, 0, 4]) - int(P[blk, i, 0, 2])) & 0xFFFFFFFF)
                e_clk.append((int(P[blk, i, 0, 4]) - int(P[blk, i, 0, 3])) & 0xFFFFFFFF)
            if d_us:
                print(
                    f"{kind} task #{i}: wg0 start->epi end median {statistics.median(d_us):.2f} us "
                    f"[{min(d_us):.2f}, {max(d_us):.2f}], {statistics.median(d_clk):.0f} clk; "
                    f"epilogue median {statistics.median(e_clk):.0f} clk [{min(e_clk)}, {max(e_clk)}]"
                )
    # repeatability: exit spread across runs
    for r, R in enumerate(runs[-3:]):
        gg = int(R[:, 15, 3, 0].min())
        ex = [((int(R[blk, 15, 3, 2]) - gg) & 0xFFFFFFFF) / 1000 for blk in range(132)]
        print(f"run {r}: wg0 exit max {max(ex):.2f} median {statistics.median(ex):.2f}")


def next_tile_cost():
    """Field 6 (probe2 build): clocks from before next_tile() to the merged
    boundary's branch on the next tile's key range, per warpgroup and task."""
    cfg = sys.argv[1]
    b, h, sq = (int(x) for x in sys.argv[2].split(","))
    d = 64 if "d64" in cfg else 128
    q, k, v = _bench.make_inputs(b, h, sq, sq, d, dtype=torch.float16)
    with _debug.forced_config(cfg):
        for _ in range(4):
            _, lse = fused_attention(q, k, v, return_lse=True)
    torch.cuda.synchronize()
    P = (
        lse.view(torch.int32)
        .flatten()[: 132 * 16 * 4 * 8]
        .view(132, 16, 4, 8)
        .cpu()
        .to(torch.int64)
        & 0xFFFFFFFF
    )
    nw = 3 if "w3" in cfg else 2
    for w in range(nw):
        xs = [
            int(P[blk, i, w, 6])
            for blk in range(132)
            for i in range(1, 5)
            if 0 < int(P[blk, i, w, 6]) < 10**6
        ]
        if xs:
            xs.sort()
            print(
                f"wg{w}: next_tile -> branch {statistics.median(xs)} clk (p10 {xs[len(xs) // 10]}, p90 {xs[9 * len(xs) // 10]}, n={len(xs)})"
            )


if __name__ == "__main__":
    main()
    next_tile_cost()
