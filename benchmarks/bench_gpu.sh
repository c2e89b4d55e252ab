#!/usr/bin/env bash
# The GPU checks in one short run (aim: under 4 minutes on one H100), with the Python and torch the machine has:
#   bash benchmarks/bench_gpu.sh     # on a CUDA machine
#   DEVICE=cpu STEPS=1 WARMUP=0 EPOCHS=1 bash benchmarks/bench_gpu.sh     # the same parts on the CPU, to check the script
# 1. the gpu-marked tests (tests/test_gpu.py), 2. the step benchmark on the card, fp32 and --amp bf16, each
# against the plain step on the same card in the same run (benchmarks/bench_train.py), and one ResNet-18 step at the
# batch the memory check allows, 3. two whole epochs of
# train.py on the card with the default loader and with --data-on-device, to see the time outside the steps. Nothing is downloaded: if soundfile is missing, the
# wheels in benchmarks/wheels/ (soundfile, cffi, pycparser for CPython 3.12 on x86-64) are installed from the tree.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
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
$py -m pytest -m gpu -q -rfEs --tb=short tests/test_gpu.py || status=1
for amp in off bf16; do
  echo "== step benchmark, --amp $amp"
  $py benchmarks/bench_train.py --device "$device" --amp "$amp" --steps "${STEPS:-10}" --warmup "${WARMUP:-3}" || status=1
done
echo "== ResNet-18 step at the largest batch the memory check lets through, --amp bf16"
$py benchmarks/bench_train.py --device "$device" --amp bf16 --variants resnet18 --steps 2 --warmup 1 || status=1
for where in "" --data-on-device; do
  echo "== two epochs of train.py (54 recordings of 6 s) ${where:-with the default loader}"
  out=$(mktemp -d)
  $py train.py --data-root benchmarks/.cache/data_6s --frequency 1000hz --epochs "${EPOCHS:-2}" --device "$device" \
      --save-dir "$out" --no-progress --profile $where | grep -E "^(run|epoch|profile)" || status=1
  rm -rf "$out"
done
exit $status
