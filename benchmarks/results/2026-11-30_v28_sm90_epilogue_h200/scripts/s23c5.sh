#!/usr/bin/env bash
# Session 23 call 5: the release wheel of main (v28): self-check and the test suite
# but the backward's tests (ci/gpu_check.sh steps main,pytest_rest).
set -u
wheel=$(ls .devrun/flashcore-*.whl | head -1)
FLASHCORE_GPU_CHECK_STEPS=main,pytest_rest timeout 560 bash ci/gpu_check.sh "$wheel" "$OUT/gc5"
rc=$?
tar czf "$OUT/gc5.tgz" -C "$OUT" gc5
exit $rc
