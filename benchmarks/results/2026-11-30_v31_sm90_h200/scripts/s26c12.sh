#!/usr/bin/env bash
# Session 26 call 12: softcap calls, main before v31 (dev build m31) vs the v31 release wheel.
set -u
mkdir -p /tmp/m31 && tar xzf .devrun/m31.tgz -C /tmp/m31 && cp -r --update=none src /tmp/m31/
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
S=benchmarks/results/2026-11-30_v31_sm90_h200/scripts/softcap_ab.py
for r in 1 2; do
  PYTHONPATH=/tmp/m31/src timeout 40 python3 $S 3 > $OUT/c12_softcap_m31_$r.txt 2>&1
  PYTHONPATH=$site timeout 40 python3 $S 3 > $OUT/c12_softcap_v31_$r.txt 2>&1
done
paste -d'|' $OUT/c12_softcap_m31_1.txt $OUT/c12_softcap_v31_1.txt; paste -d'|' $OUT/c12_softcap_m31_2.txt $OUT/c12_softcap_v31_2.txt
