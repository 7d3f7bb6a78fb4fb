#!/usr/bin/env bash
# The authors' Sudoku recipe (C=512, 9,000 steps) and the rest of a Tetrominoes run, side by side on
# one GPU within a fixed wall-clock budget, then the Sudoku evaluations, then everything packed.
#
#   OUT=gpu-out DATA=gpu-data RUNS=gpu-runs bash scripts/gpu_recipes.sh [BUDGET_SECONDS]
#
# DATA holds satnet-train.csv.xz, rrn-valid.csv.xz and heldout-satnet.csv
# (`akorn sudoku generate 500 --givens 31-42 --style satnet --seed 12345`). Any of them can be given
# instead: SUDOKU_TRAIN, SUDOKU_ID and SUDOKU_OOD take whatever `data=` / `--data` take, e.g. the
# folders of `akorn sudoku download satnet|rrn` (data/sudoku: trains on its first 9,000 boards and
# evaluates on its last 1,000, the paper's ID set; data/sudoku-hard: its test split, the OOD set).
# RUNS/obj-crop35/tetrominoes-c128-attn is an objects run folder to resume (skipped when absent).
# A training still running at its deadline gets SIGTERM; its periodic checkpoints remain.
# SMOKE=1: tiny models on the CPU, to check the script itself in a minute.
set -uo pipefail
BUDGET=${1:-540}
OUT=${OUT:-gpu-out}
DATA=${DATA:-gpu-data}
RUNS=${RUNS:-gpu-runs}
PY=${PY:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
left_until() { local s=$(( $1 - $(elapsed) )); (( s < 1 )) && s=1; echo $s; }

# Deadlines in seconds from the start: Sudoku training, Sudoku evaluations, objects training.
# Without an objects run to share the GPU with, give the Sudoku training more (SUDOKU_END=...).
SUDOKU_END=${SUDOKU_END:-$(( BUDGET * 68 / 100 ))}
EVAL_END=${EVAL_END:-$(( BUDGET * 92 / 100 ))}
OBJECTS_END=${OBJECTS_END:-$(( BUDGET * 90 / 100 ))}
VOTE_PER_GIVENS=${VOTE_PER_GIVENS:-20}  # RRN boards per number of givens in the K=100 evaluations
SUDOKU_TRAIN=${SUDOKU_TRAIN:-$DATA/satnet-train.csv.xz}
ID=${SUDOKU_ID:-$DATA/heldout-satnet.csv}
RRN=${SUDOKU_OOD:-$DATA/rrn-valid.csv.xz}
for f in "$SUDOKU_TRAIN" "$ID" "$RRN"; do
  [[ -e $f ]] || { echo "gpu_recipes.sh: no such file or folder: $f (see the header for DATA)" >&2; exit 2; }
done
mkdir -p "$OUT/logs" "$RUNS"

if [[ ${SMOKE:-0} == 1 ]]; then
  SUDOKU_ARGS="preset=tiny device=cpu max_steps=40"
  OBJECTS_ARGS="device=cpu compile=false max_steps=2504 checkpoint_every=2"
  EVAL_ARGS="--device cpu --chunk 50"
else
  SUDOKU_ARGS="precision=bf16 compile=true"
  OBJECTS_ARGS="checkpoint_every=1000 log_every=50"
  EVAL_ARGS="--device cuda --chunk 4000"
fi

{
  date -u; nvidia-smi 2>&1 | head -15
  $PY -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} > "$OUT/logs/env.txt" 2>&1
cat "$OUT/logs/env.txt"

# A training that crashes (not a deadline, not a usage error) is tried once more without
# torch.compile, from its last checkpoint when it has one.
train_with_fallback() {  # LOG END RUN_DIR -- akorn EXPERIMENT train ARGS...
  local log=$1 end=$2 run=$3; shift 4
  timeout -s TERM "$(left_until "$end")" $PY -m akorn "$@" > "$log" 2>&1
  local rc=$?
  echo "[$(elapsed) s] $(basename "$log" .log): exit $rc" | tee -a "$OUT/logs/timeline.txt"
  if (( rc != 0 && rc != 124 && rc != 2 )); then
    tail -20 "$log"
    if ls "$run/checkpoints" 2>/dev/null | grep -q step-; then
      set -- "$1" train --resume "$run" compile=false
    else
      set -- "$@" compile=false
    fi
    timeout -s TERM "$(left_until "$end")" $PY -m akorn "$@" >> "$log" 2>&1
    rc=$?
    echo "[$(elapsed) s] $(basename "$log" .log) without compile: exit $rc" | tee -a "$OUT/logs/timeline.txt"
  fi
}

SUDOKU_RUN=$RUNS/sudoku-c512
train_with_fallback "$OUT/logs/sudoku-train.log" "$SUDOKU_END" "$SUDOKU_RUN" -- \
  sudoku train data="$SUDOKU_TRAIN" out_dir="$RUNS" name=sudoku-c512 checkpoint_every=250 \
  keep_checkpoints=40 log_every=50 $SUDOKU_ARGS &
SUDOKU_PID=$!

OBJ_RUN=$RUNS/obj-crop35/tetrominoes-c128-attn
OBJECTS_PID=
if [[ -d $OBJ_RUN ]]; then
  train_with_fallback "$OUT/logs/objects-train.log" "$OBJECTS_END" "$OBJ_RUN" -- \
    objects train --resume "$OBJ_RUN" $OBJECTS_ARGS &
  OBJECTS_PID=$!
fi

wait $SUDOKU_PID
grep '"split": "train"' "$SUDOKU_RUN/metrics.jsonl" 2>/dev/null | tail -2

evaluate() {  # NAME -- eval args...
  local name=$1; shift 2
  (( $(elapsed) >= EVAL_END - 5 )) && { echo "skipped $name: out of time" | tee -a "$OUT/logs/timeline.txt"; return; }
  timeout -s TERM "$(left_until "$EVAL_END")" $PY -m akorn sudoku eval "$SUDOKU_RUN" $EVAL_ARGS \
    --json "$OUT/logs/eval-$name.json" "$@" > "$OUT/logs/eval-$name.log" 2>&1
  local rc=$?
  echo "[$(elapsed) s] eval $name: exit $rc | $(grep -h 'board accuracy\|boards ' "$OUT/logs/eval-$name.log" | tr '\n' ' ')" \
    | tee -a "$OUT/logs/timeline.txt"
}
evaluate id-T16 -- --data "$ID" --steps 16
evaluate ood-T128 -- --data "$RRN" --per-givens 56 --steps 128
evaluate ood-T16 -- --data "$RRN" --per-givens 56 --steps 16
evaluate id-T128 -- --data "$ID" --steps 128
evaluate ood-T128-K100-confidence -- --data "$RRN" --per-givens "$VOTE_PER_GIVENS" --steps 128 --candidates 100 --select confidence
evaluate ood-T128-K100-energy -- --data "$RRN" --per-givens "$VOTE_PER_GIVENS" --steps 128 --candidates 100 --select energy

[[ -n $OBJECTS_PID ]] && wait $OBJECTS_PID
grep '"split": "train"' "$OBJ_RUN/metrics.jsonl" 2>/dev/null | tail -1

# Pack: the last Sudoku checkpoint without its optimizer (evaluation and init= need no more),
# every objects checkpoint's weights plus the last one whole, the run records and the logs.
pack_dir=$(mktemp -d)
last=$(ls -d "$SUDOKU_RUN"/checkpoints/step-* 2>/dev/null | tail -1)
if [[ -n $last ]]; then
  mkdir -p "$pack_dir/sudoku-c512/checkpoints/$(basename "$last")"
  cp "$SUDOKU_RUN"/{config.json,command.txt,metrics.jsonl} "$pack_dir/sudoku-c512/"
  cp "$last"/{model,ema}.safetensors "$pack_dir/sudoku-c512/checkpoints/$(basename "$last")/"
  $PY -c "import json,sys; s=json.load(open(sys.argv[1])); s.pop('optimizer', None); json.dump(s, open(sys.argv[2],'w'), indent=1)" \
    "$last/state.json" "$pack_dir/sudoku-c512/checkpoints/$(basename "$last")/state.json"
  tar -C "$pack_dir" -cf - sudoku-c512 | split -b 15M - "$OUT/sudoku-c512.tar.part-"
fi
if [[ -d $OBJ_RUN ]]; then
  objlast=$(ls -d "$OBJ_RUN"/checkpoints/step-* | tail -1)
  tar -C "$RUNS" -cf - --exclude='optimizer.safetensors' --exclude='tb' --exclude='step-00002500' obj-crop35 \
    | split -b 15M - "$OUT/objects.tar.part-"
  tar -C "$RUNS" -cf "$OUT/objects-last-optimizer.tar" "obj-crop35/tetrominoes-c128-attn/checkpoints/$(basename "$objlast")/optimizer.safetensors"
fi
tar -C "$OUT" -czf "$OUT/logs.tar.gz" logs && rm -rf "$OUT/logs"
rm -rf "$pack_dir"
echo "[$(elapsed) s] done"; ls -la "$OUT"
