#!/usr/bin/env bash
# Session 23 call 2: A/B of dev builds against main's release wheel (fp16):
# exp2_poly on every 4th / 8th k16 step at head dim 64, and a timing-only fake
# without the O store (the epilogue's cost).
set -u
t0=$SECONDS
mkdir -p "$OUT/c2"
main=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$main" .devrun/flashcore-*.whl
for b in poly4 poly8 fakenoepi; do
  mkdir -p /tmp/$b && cp -r src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b
done
ab() {  # ab NAME PYTHONPATH HEADDIM_CONFIGS SHAPES ROUND
  PYTHONPATH=$2 timeout 100 python3 benchmarks/ab_configs.py --configs "$3" --dtype fp16 \
    --rounds 1 --shapes "$4" > "$OUT/c2/ab_$1_$5.txt" 2>&1
  echo "$1 round $5 rc=$? ($((SECONDS-t0)) s)"
}
S64="4,15,2048;4,16,2048;8,16,4096;2,16,16384"
S128="4,16,2048;8,16,4096;1,32/8,8192"
C64=sm90_d64_w3,sm90_d64_w3_p,sm90_d64_p
C128=sm90_d128,sm90_d128_p
for r in 1 2; do
  ab m64 "$main" $C64 "$S64" $r
  ab poly4 /tmp/poly4/src $C64 "$S64" $r
  ab poly8 /tmp/poly8/src $C64 "$S64" $r
  ab fake64 /tmp/fakenoepi/src $C64 "$S64" $r
  ab m128 "$main" $C128 "$S128" $r
  ab fake128 /tmp/fakenoepi/src $C128 "$S128" $r
done
# poly4 correctness: the forward's sm90 tests and the growth cases on the branch build
PYTHONPATH=/tmp/poly4/src timeout 120 python3 -m pytest -q tests/test_fwd.py -k "sm90_d64" > "$OUT/c2/poly4_fwd.txt" 2>&1
echo "poly4 tests rc=$? ($((SECONDS-t0)) s)"; tail -2 "$OUT/c2/poly4_fwd.txt"
PYTHONPATH=/tmp/poly4/src timeout 60 python3 .devrun/spec_check.py > "$OUT/c2/poly4_spec.txt" 2>&1
echo "poly4 spec rc=$? ($((SECONDS-t0)) s)"; tail -2 "$OUT/c2/poly4_spec.txt"
tar czf "$OUT/c2.tgz" -C "$OUT" c2
