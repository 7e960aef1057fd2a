set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
mkdir -p "$OUT/c10"
export PYTHONPATH=$site
timeout 200 python3 -m pytest -q -rs --durations=10 tests/test_sm90.py tests/test_masks.py > "$OUT/c10/pytest.txt" 2>&1
echo "pytest rc=$? ($((SECONDS-t0)) s)"; grep -E "^(FAILED|ERROR)|passed|failed|SKIPPED" "$OUT/c10/pytest.txt" | tail -8
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
timeout 170 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d128_p > "$OUT/c10/racecheck.txt" 2>&1
echo "racecheck rc=$? ($((SECONDS-t0)) s)"; grep -c "ok$" "$OUT/c10/racecheck.txt"; tail -2 "$OUT/c10/racecheck.txt" | cut -c1-200
