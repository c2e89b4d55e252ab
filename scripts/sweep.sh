#!/usr/bin/env bash
# Example sweep: seeds × frequencies × loss types, JOBS runs at a time, then the summary table.
#   JOBS=2 SEEDS="1 2 3" EPOCHS=30 scripts/sweep.sh --data-root data --save-dir sweep_out [more train.py flags]
# Each of the JOBS runs gets --threads <cores / JOBS> unless the flags give --threads.
# Each run gets its own folder under <save-dir>/model_checkpoints (with its train.log), even when runs start in the
# same second. Relative paths are taken from where the command is run; --save-dir X and --save-dir=X both work.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-"1 2 3"}
FREQUENCIES=${FREQUENCIES:-"500hz 1000hz 3000hz"}
LOSSES=${LOSSES:-"standard ghm"}
EPOCHS=${EPOCHS:-30}
save_dir=saved_models
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --save-dir) save_dir=${args[i + 1]} ;;
    --save-dir=*) save_dir=${args[i]#--save-dir=} ;;
  esac
done
# Each job gets its share of the cores (unless the flags name --threads): two runs that each take every core
# fight over them and are slower together than one after the other.
threads=()
[[ " ${args[*]} " == *" --threads"* ]] || threads=(--threads "$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))")
status=0
for seed in $SEEDS; do for frequency in $FREQUENCIES; do for loss in $LOSSES; do
  printf '%s\0' "--seed $seed --frequency $frequency --loss-type $loss"
done; done; done |
  xargs -0 -P "$JOBS" -I{} sh -c 'train=$1; run=$2; shift 2; python "$train" --no-progress --epochs "$0" $run "$@" >/dev/null' \
    "$EPOCHS" "$repo/train.py" {} "${threads[@]}" "${args[@]}" || status=$?
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" python -m utils.summarize "$save_dir"
exit $status
