#!/usr/bin/env bash
# Example sweep: seeds × frequencies × loss types × an optional grid over any flags, JOBS runs at a time, then
# the summary table.
#   JOBS=2 SEEDS="1 2 3" EPOCHS=30 scripts/sweep.sh --data-root data --save-dir sweep_out [more train.py flags]
#   GRID="--margin 5 10 20; --ghm-alpha 0 0.75 1" LOSSES=ghm scripts/sweep.sh --data-root data --save-dir grid_out
#   FREQUENCIES="500hz,1000hz,3000hz" scripts/sweep.sh ... --pair-scope subset   (one run pooling all three)
# GRID: groups separated by ";", each a flag and its values; every combination is run.
# Each of the JOBS runs gets --threads <cores / JOBS> unless the flags give --threads.
# Each run's output (stdout and stderr) goes to <save-dir>/sweep_logs/<its settings>.log; its run folder under
# <save-dir>/model_checkpoints has its train.log too. Relative paths are taken from where the command is run;
# --save-dir X and --save-dir=X both work.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-"1 2 3"}
FREQUENCIES=${FREQUENCIES:-"500hz 1000hz 3000hz"}
LOSSES=${LOSSES:-"standard ghm"}
EPOCHS=${EPOCHS:-30}
GRID=${GRID:-}
# Every setting is checked as data before use: JOBS and EPOCHS go into shell arithmetic and xargs, which would
# evaluate what they hold.
fail() { printf 'error: %s\n' "$1" >&2; exit 2; }
[[ $JOBS =~ ^[1-9][0-9]{0,3}$ ]] || fail "JOBS=$(printf %q "$JOBS"): must be a whole number from 1 to 9999"
[[ $EPOCHS =~ ^[1-9][0-9]{0,5}$ ]] || fail "EPOCHS=$(printf %q "$EPOCHS"): must be a whole number >= 1"
for seed in $SEEDS; do [[ $seed =~ ^[0-9]{1,10}$ ]] || fail "SEEDS: $(printf %q "$seed") is not a whole number"; done
for frequency in $FREQUENCIES; do
  [[ $frequency =~ ^[0-9]+(\.[0-9]+)?hz(,[0-9]+(\.[0-9]+)?hz)*$|^all$ ]] ||
    fail "FREQUENCIES: $(printf %q "$frequency") is not <N>hz, several joined by commas (pooled), or all"
done
for loss in $LOSSES; do
  [[ $loss == standard || $loss == ghm ]] || fail "LOSSES: $(printf %q "$loss") is not standard or ghm"
done
save_dir=saved_models
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --save-dir) save_dir=${args[i + 1]} ;;
    --save-dir=*) save_dir=${args[i]#--save-dir=} ;;
  esac
done
combos=("")
IFS=';' read -ra groups <<< "$GRID"
for group in "${groups[@]}"; do
  read -ra words <<< "$group"
  ((${#words[@]})) || continue
  if [[ ${words[0]} != --* || ${#words[@]} -lt 2 ]]; then
    echo "error: GRID: '$group' is not a flag followed by its values (e.g. GRID=\"--margin 5 10; --ghm-alpha 0 1\")" >&2
    exit 2
  fi
  next=()
  for combo in "${combos[@]}"; do for value in "${words[@]:1}"; do next+=("$combo ${words[0]} $value"); done; done
  combos=("${next[@]}")
done
# Each job gets its share of the cores (unless the flags name --threads): two runs that each take every core
# fight over them and are slower together than one after the other.
threads=()
[[ " ${args[*]} " == *" --threads"* ]] || threads=(--threads "$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))")
logs="$save_dir/sweep_logs"
mkdir -p "$logs"
status=0
for seed in $SEEDS; do for frequency in $FREQUENCIES; do for loss in $LOSSES; do for combo in "${combos[@]}"; do
  printf '%s\0' "--seed $seed --frequency $frequency --loss-type $loss$combo"
done; done; done; done |
  xargs -0 -P "$JOBS" -I{} sh -c '
    epochs=$1; train=$2; logs=$3; run=$4; shift 4
    log="$logs/$(printf "%s" "$run" | sed -e "s/^--//" -e "s/ --/__/g" -e "s/ /=/g").log"
    python "$train" --no-progress --epochs "$epochs" "$@" $run >"$log" 2>&1 ||
      { code=$?; echo "failed (exit $code): $run; see $log" >&2; exit "$code"; }' \
    sweep "$EPOCHS" "$repo/train.py" "$logs" {} "${threads[@]}" "${args[@]}" || status=$?
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" python -m utils.summarize "$save_dir"
exit $status
