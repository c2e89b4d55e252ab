#!/usr/bin/env bash
# The GPU checks in one short run, with the Python and torch the machine has (goal: under 4 minutes; 300 and 338 s
# on one H100 before the bytecode cache below, not yet timed with it):
#   bash benchmarks/bench_gpu.sh     # on a CUDA machine
#   DEVICE=cpu STEPS=1 WARMUP=0 EPOCHS=1 bash benchmarks/bench_gpu.sh     # the same parts on the CPU, to check the script
# 1. the gpu-marked tests (tests/test_gpu.py, in one process), 2. the step benchmark on the card in fp32 (with the
# plain step in channels-last too) and with --amp bf16, each against the plain step on the same card in the same run
# (benchmarks/bench_train.py), and one ResNet-18 step at the batch the memory check allows, 3. whole train.py runs
# (default, --data-on-device) against plain epochs on the card (benchmarks/bench_epoch.py). Nothing is
# downloaded: if soundfile is missing, the wheels in benchmarks/wheels/ (soundfile, cffi, pycparser for CPython 3.12
# on x86-64) are installed from the tree.
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
$py - <<'PY'
import platform, torch
card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"python {platform.python_version()}, torch {torch.__version__}, {card}")
PY
status=0
echo "== gpu tests"
$py -m pytest -n 0 -m gpu -q -rfEs --tb=short tests/test_gpu.py || status=1
echo "== step benchmark, fp32"
$py benchmarks/bench_train.py --device "$device" --variants plain,plain_cl,ours,unique "${steps[@]}" || status=1
echo "== step benchmark, --amp bf16"
$py benchmarks/bench_train.py --device "$device" --amp bf16 "${steps[@]}" || status=1
echo "== ResNet-18 step at the largest batch the memory check lets through, --amp bf16"
$py benchmarks/bench_train.py --device "$device" --amp bf16 --variants resnet18 --steps 2 --warmup 1 || status=1
echo "== whole runs of train.py against plain epochs (54 recordings of 6 s)"
$py benchmarks/bench_epoch.py --device "$device" --epochs "${EPOCHS:-2}" --variants default,data_on_device \
    --plain-steps 3 || status=1
exit $status
