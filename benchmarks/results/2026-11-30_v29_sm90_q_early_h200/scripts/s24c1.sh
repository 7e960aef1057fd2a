set -u
mkdir -p /tmp/m0 && cp -r src /tmp/m0/ && tar xzf .devrun/m.tgz -C /tmp/m0
PYTHONPATH=/tmp/m0/src timeout 60 python3 -m pytest -q tests/test_fwd.py -k "graph" > $OUT/graph_tests.txt 2>&1; echo "graph rc=$?"; tail -3 $OUT/graph_tests.txt
bash benchmarks/results/2026-11-30_v28_sm90_epilogue_h200/scripts/next_ab.sh
