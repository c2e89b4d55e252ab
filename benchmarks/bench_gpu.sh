#!/usr/bin/env bash
# The GPU checks in one short run, with the Python and torch the machine has (goal: under 4 minutes; 300 and 338 s
# on one H100 before the bytecode cache, the parallel tests and the single step benchmark below, not yet timed
# with them):
#   bash benchmarks/bench_gpu.sh     # on a CUDA machine
#   DEVICE=cpu STEPS=1 WARMUP=0 EPOCHS=1 bash benchmarks/bench_gpu.sh     # the same parts on the CPU, to check the script
# 1. the gpu-marked tests (tests/test_gpu.py, spread over TEST_WORKERS processes), 2. one step benchmark on the card
# (benchmarks/bench_train.py): the plain step (also with channels-last weights) against ours and unique in fp32 and
# with --amp bf16, and the ResNet-18 in bf16 at the batch the memory check allows, 3. whole train.py runs (default,
# --data-on-device) against plain epochs on the card (benchmarks/bench_epoch.py). Each part's start is printed in
# seconds since the script began. Nothing is downloaded: if soundfile is missing, the wheels in benchmarks/wheels/
# (soundfile, cffi, pycparser for CPython 3.12 on x86-64) are installed from the tree.
set -uo pipefail
cd "$(dirname "$0")/.."
# The GPU machine's Python kept no bytecode for its packages: every process compiled torch's sources again
# (5.4 s of a train.py run there). A cache of our own in /tmp lets each later process of this script skip that.
export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-/tmp/bench_gpu_pycache}
unset PYTHONDONTWRITEBYTECODE
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
steps=(--steps "${STEPS:-5}" --warmup "${WARMUP:-2}")
if ! $py -c "import soundfile" 2>/dev/null; then
  $py -m pip install --no-index --no-deps --quiet benchmarks/wheels/*.whl || { echo "error: soundfile could not be installed from benchmarks/wheels/" >&2; exit 2; }
fi
# first, alone: this process fills the bytecode cache that the test workers then share
$py - <<'PY'
import platform, torch
card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"python {platform.python_version()}, torch {torch.__version__}, {card}")
PY
status=0
part() { echo "== $1 (at ${SECONDS} s)"; }
part "gpu tests"
# --dist load: the project's pytest.ini keeps a file's tests on one worker (loadfile); here they spread over several
# processes (the card's machines had 16 cores; in one process the 8 tests took 62-82 s there, and the diagnostic
# lease saw 5 s of imports and 5 s of CUDA start-up per process)
$py -m pytest -n "${TEST_WORKERS:-4}" --dist load -m gpu -q -rfEs --tb=short tests/test_gpu.py || status=1
part "step benchmark: fp32, --amp bf16 and the ResNet-18 (bf16) at the largest batch the memory check lets through"
$py benchmarks/bench_train.py --device "$device" "${steps[@]}" \
    --variants plain,plain_cl,ours,unique,ours:bf16,unique:bf16,resnet18:bf16 || status=1
part "whole runs of train.py against plain epochs (54 recordings of 6 s)"
$py benchmarks/bench_epoch.py --device "$device" --epochs "${EPOCHS:-2}" --variants default,data_on_device \
    --plain-steps 3 || status=1
echo "== bench_gpu.sh took ${SECONDS} s, exit status $status"
exit $status
