import collections
import glob
import re
import statistics
import sys

# usage: abcmp.py DIR A B [CALL]  (files {CALL}_ab_{A|B}_{64|128}_{round}.txt; CALL "c*" by default)
d, A, B = sys.argv[1:4]
call = sys.argv[4] if len(sys.argv) > 4 else "c*"


def load(b):
    res = collections.defaultdict(list)
    for f in sorted(glob.glob(f"{d}/{call}_ab_{b}_*.txt")):
        with open(f) as fh:
            lines = fh.readlines()
        for l in lines:
            m = re.match(r"(\w+) (\S+) causal=(\w+)\s+TFLOP/s: (.*)", l)
            if not m:
                continue
            toks = m.group(4).split()
            for k, v in zip(toks[::2], toks[1::2]):
                res[(m.group(1), m.group(2), m.group(3), k)].append(float(v))
    return res


a = load(A)
b = load(B)
for k in sorted(a):
    if k in b and k[3] != "cudnn":
        ma, mb = statistics.median(a[k]), statistics.median(b[k])
        ca = statistics.median(a[k[:3] + ("cudnn",)])
        cb = statistics.median(b[k[:3] + ("cudnn",)])
        print(
            f"{k[0]} {k[1]:18s} causal={k[2]:5s} {k[3]:14s} {A} {ma:6.1f} ({ma / ca:.3f}x cudnn)  {B} {mb:6.1f} ({mb / cb:.3f}x)  {B}/{A} {mb / ma:.3f}"
        )
