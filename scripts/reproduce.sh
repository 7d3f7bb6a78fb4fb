#!/usr/bin/env bash
# The exact command behind each figure of README's results table, with the shipped models; each
# writes its JSON into OUT (default reproduce-out).
#
#   RRN=rrn-valid.csv.xz CIFAR_TEST=cifar10/test CIFAR_EXACT=cifar10-test1000-lossless.npz \
#       bash scripts/reproduce.sh NAME [NAME ...]          # NAME: one of the rows below, or all
#
#   sudoku-id          held-out SATNet-like boards (generated, 500), T=16 and T=128
#   sudoku-ood         RRN validation boards, 56 per number of givens (1,008), T=16 and T=128
#   sudoku-extension   the same 1,008 boards at T=16, 32, 64, 128, 256 and 512 (table and plot)
#   sudoku-shipped     the shipped model's table in docs/sudoku.md: voting K=16, harder held-out
#                      boards, the SATNet training boards (needs SATNET), 360 RRN boards at T=16 and T=128
#   sudoku-exits       docs/sudoku.md's early-exit tables: 54 RRN boards, K=16, T=64 with each select and
#                      exit; 360 RRN boards, K=100, T=128, --select valid (bf16); 500 held-out SATNet-like
#                      boards, K=16, T=64, valid and energy (bf16)
#   sudoku-extension-id  the shipped model on 200 held-out SATNet-like boards at T=16 to 512 (bf16)
#   sudoku-c128        the C=128 model trained on the CPU (pretrained:sudoku-akorn-c128): the same board
#                      sets as sudoku-shipped (needs SATNET and RRN)
#   sudoku-vote        360 RRN boards (20 per number of givens), K=100 starts, T=128, energy voting (bf16)
#   sudoku-confidence  the same boards and starts, the most confident start kept (bf16)
#   tetrominoes        FG-ARI and MBO on 320 generated test scenes, without and with up-tiling x4
#   cifar10            clean accuracy and ECE on the 10,000 test images; AutoAttack-rand on 20 exact-pixel ones;
#                      the audit (EoT and the ε sweep) on 100
#
# SATNET: the SATNet training boards as quiz,solution CSV (satnet-train.csv.xz).
# RRN: the RRN "sudoku-hard" validation split (`akorn sudoku download rrn` gets it when online);
# CIFAR_TEST: a folder of class sub-folders (or the python batches), CIFAR_EXACT: exact test pixels
# (.npz with images and labels; default: CIFAR_TEST).
set -euo pipefail
OUT=${OUT:-reproduce-out}
AKORN=${AKORN:-akorn}
mkdir -p "$OUT"
need() { [[ -n ${!1:-} && -e ${!1} ]] || { echo "reproduce.sh: $2 needs $1 (see the header)" >&2; exit 2; }; }
heldout() {
  [[ -e $OUT/heldout-satnet.csv ]] || $AKORN sudoku generate 500 --givens 31-42 --style satnet --seed 12345 \
    --out "$OUT/heldout-satnet.csv"
}
run() {  # NAME
  case $1 in
  sudoku-id)
    heldout
    for T in 16 128; do
      $AKORN sudoku eval pretrained --data "$OUT/heldout-satnet.csv" --steps $T --quiet --json "$OUT/sudoku-id-t$T.json"
    done ;;
  sudoku-ood)
    need RRN sudoku-ood
    for T in 16 128; do
      $AKORN sudoku eval pretrained --data "$RRN" --per-givens 56 --steps $T --quiet --json "$OUT/sudoku-ood-t$T.json"
    done ;;
  sudoku-extension)
    need RRN sudoku-extension
    $AKORN sudoku extension pretrained --data "$RRN" --per-givens 56 --steps 16,32,64,128,256,512 --quiet \
      --out "$OUT/sudoku-extension" ;;
  sudoku-shipped)
    need RRN sudoku-shipped
    need SATNET sudoku-shipped
    heldout
    [[ -e $OUT/heldout-unique.csv ]] || $AKORN sudoku generate 500 --givens 31-42 --style unique --seed 12345 \
      --out "$OUT/heldout-unique.csv"
    $AKORN sudoku eval pretrained --data "$OUT/heldout-satnet.csv" --steps 16 --candidates 16 --quiet \
      --json "$OUT/sudoku-id-t16-k16.json"
    $AKORN sudoku eval pretrained --data "$OUT/heldout-unique.csv" --steps 16 --quiet --json "$OUT/sudoku-unique-t16.json"
    $AKORN sudoku eval pretrained --data "$SATNET" --limit 500 --steps 16 --quiet --json "$OUT/sudoku-train-t16.json"
    for T in 16 128; do
      $AKORN sudoku eval pretrained --data "$RRN" --per-givens 20 --steps $T --quiet --json "$OUT/sudoku-rrn360-t$T.json"
    done ;;
  sudoku-c128)
    need RRN sudoku-c128
    need SATNET sudoku-c128
    heldout
    [[ -e $OUT/heldout-unique.csv ]] || $AKORN sudoku generate 500 --givens 31-42 --style unique --seed 12345 \
      --out "$OUT/heldout-unique.csv"
    local c128=($AKORN sudoku eval pretrained:sudoku-akorn-c128 --quiet)
    "${c128[@]}" --data "$OUT/heldout-satnet.csv" --steps 16 --json "$OUT/c128-id-t16.json"
    "${c128[@]}" --data "$OUT/heldout-satnet.csv" --steps 16 --precision bf16 --json "$OUT/c128-id-t16-bf16.json"
    "${c128[@]}" --data "$OUT/heldout-satnet.csv" --steps 16 --candidates 16 --json "$OUT/c128-id-t16-k16.json"
    "${c128[@]}" --data "$OUT/heldout-unique.csv" --steps 16 --json "$OUT/c128-unique-t16.json"
    "${c128[@]}" --data "$SATNET" --limit 500 --steps 16 --json "$OUT/c128-train-t16.json"
    for T in 16 128; do
      "${c128[@]}" --data "$RRN" --per-givens 20 --steps $T --json "$OUT/c128-rrn360-t$T.json"
    done ;;
  sudoku-exits)
    need RRN sudoku-exits
    local base=($AKORN sudoku eval pretrained --data "$RRN" --per-givens 3 --candidates 16 --steps 64 --quiet)
    "${base[@]}" --select confidence --json "$OUT/exits-confidence.json"
    "${base[@]}" --select confidence --stable 16 --json "$OUT/exits-confidence-stable16.json"
    "${base[@]}" --select valid --json "$OUT/exits-valid.json"
    "${base[@]}" --select energy --json "$OUT/exits-energy.json"
    "${base[@]}" --select energy --stable 16 --json "$OUT/exits-energy-stable16.json"
    $AKORN sudoku eval pretrained --data "$RRN" --per-givens 20 --steps 128 --candidates 100 --select valid \
      --precision bf16 --compile --quiet --json "$OUT/exits-valid-k100.json"
    heldout
    for select in valid energy; do
      $AKORN sudoku eval pretrained --data "$OUT/heldout-satnet.csv" --steps 64 --candidates 16 --select $select \
        --precision bf16 --compile --quiet --json "$OUT/exits-id-$select-k16.json"
    done ;;
  sudoku-extension-id)
    heldout
    $AKORN sudoku extension pretrained --data "$OUT/heldout-satnet.csv" --limit 200 --steps 16,32,64,128,256,512 \
      --precision bf16 --quiet --out "$OUT/sudoku-extension-id" ;;
  sudoku-vote | sudoku-confidence)
    need RRN "$1"
    local select=energy
    [[ $1 == sudoku-confidence ]] && select=confidence
    $AKORN sudoku eval pretrained --data "$RRN" --per-givens 20 --steps 128 --candidates 100 --select $select \
      --precision bf16 --compile --quiet --json "$OUT/$1-k100.json" ;;
  tetrominoes)
    for R in 1 4; do
      $AKORN objects eval pretrained:tetrominoes --uptile $R --quiet --figure "$OUT/tetrominoes-x$R.png" \
        --json "$OUT/tetrominoes-x$R.json"
    done ;;
  cifar10)
    need CIFAR_TEST cifar10
    local exact=${CIFAR_EXACT:-$CIFAR_TEST}
    $AKORN classify eval pretrained:cifar10 --data "$CIFAR_TEST" --attacks none --corruptions none --quiet \
      --out "$OUT/cifar10-clean"
    $AKORN classify eval pretrained:cifar10 --data "$exact" --attacks autoattack-rand --rand-limit 20 \
      --corruptions none --limit 1000 --batch-size 20 --quiet --out "$OUT/cifar10-rand"
    $AKORN classify audit pretrained:cifar10 --data "$exact" --limit 100 --sections eot,sweep --eot 1,4 \
      --apgd-eot 1 --sweep-eot 1 --quiet --out "$OUT/audit-cifar10" ;;
  all)
    for name in sudoku-id sudoku-ood tetrominoes cifar10 sudoku-shipped sudoku-extension sudoku-extension-id sudoku-c128 sudoku-exits \
      sudoku-vote sudoku-confidence; do
      run $name
    done ;;
  *)
    echo "reproduce.sh: unknown row '$1'; one of sudoku-id sudoku-ood sudoku-extension sudoku-extension-id sudoku-shipped sudoku-c128 sudoku-exits sudoku-vote sudoku-confidence tetrominoes cifar10 all" >&2
    exit 2 ;;
  esac
}
[[ $# -ge 1 ]] || { sed -n '2,26p' "$0" >&2; exit 2; }
for name in "$@"; do run "$name"; done
