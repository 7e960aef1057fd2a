#!/usr/bin/env bash
# auditwheel repair for flashcore wheels: the one place that lists what must NOT
# be grafted into the wheel, because torch already ships it and loads it into the
# process before flashcore (a second copy would be a second CUDA runtime / a
# second libtorch): libtorch*, libc10*, the CUDA runtime (libcudart, from torch's
# nvidia-cuda-runtime dependency) and the driver (libcuda, from the system).
#   ci/repair_wheel.sh WHEEL DEST_DIR
# Used by [tool.cibuildwheel] repair-wheel-command and by .ci/run.
set -euo pipefail
wheel=${1:?usage: ci/repair_wheel.sh WHEEL DEST_DIR}
dest=${2:?usage: ci/repair_wheel.sh WHEEL DEST_DIR}
auditwheel repair -w "$dest" \
  --exclude 'libtorch.so' --exclude 'libtorch_cpu.so' --exclude 'libtorch_cuda.so' \
  --exclude 'libtorch_python.so' --exclude 'libc10.so' --exclude 'libc10_cuda.so' \
  --exclude 'libcudart.so.*' --exclude 'libcuda.so.*' \
  "$wheel"
