#!/usr/bin/env bash
# Downloads the optional test dependencies (transformers and what it needs) as
# wheels for an offline GPU machine:
#   ci/test_wheels.sh OUTDIR [PYTHON_VERSION]   (default 3.12, the device's)
# then on that machine: FLASHCORE_TEST_WHEELS=OUTDIR bash ci/gpu_check.sh WHEEL LOGDIR
set -euo pipefail
out=${1:?usage: ci/test_wheels.sh OUTDIR [PYTHON_VERSION]}
py=${2:-3.12}
python3 -m pip download -q --only-binary=:all: --implementation cp --python-version "$py" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$out" transformers
# numpy (16 MB) and hf_xet (4 MB, downloads only) are on the device image already;
# dropping them keeps a release wheel plus these under the device's 64 MiB carry.
# gpu_check.sh installs the rest with --no-deps.
rm -f "$out"/numpy-*.whl "$out"/hf_xet-*.whl
du -sh "$out"
