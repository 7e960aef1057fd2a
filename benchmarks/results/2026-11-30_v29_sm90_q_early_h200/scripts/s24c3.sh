set -u
t0=$SECONDS
mkdir -p /tmp/m0 && cp -r src /tmp/m0/ && tar xzf .devrun/m.tgz -C /tmp/m0
PYTHONPATH=/tmp/m0/src timeout 150 python3 -m pytest -q -rs tests/test_fwd.py -k "sm90 or graph" > $OUT/fwd_sm90.txt 2>&1; echo "sm90 rc=$? ($((SECONDS-t0)) s)"; tail -4 $OUT/fwd_sm90.txt
PYTHONPATH=/tmp/m0/src timeout 380 python3 -m pytest -q -rs -x tests/test_fwd.py -k "not (sm90 or graph)" > $OUT/fwd_rest.txt 2>&1; echo "rest rc=$? ($((SECONDS-t0)) s)"; tail -6 $OUT/fwd_rest.txt
