#!/usr/bin/env bash
# The object-discovery results tables of docs/objects.md: train AKOrN (attn, conv) and ItrSA on
# Tetrominoes and multi-dSprites with the cpu preset, then evaluate FG-ARI / MBO.
# Runs one job at a time (they share the CPU); every run's log, metrics and eval JSON
# land under runs/objects-table/.
# Usage: bash scripts/objects_table.sh [tetrominoes] [dsprites] [tetrominoes-long] [dsprites-long]
#   tetrominoes-long: the same three models with ten times the data, 2 epochs (1,874 steps each).
#   dsprites-long: ten times the data, 1 epoch (937 steps each).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
OUT=runs/objects-table
mkdir -p "$OUT"
DATASETS=("${@:-tetrominoes dsprites}")
for data in ${DATASETS[@]}; do
  case $data in
    # the Tetrominoes tables of docs/objects.md use the denser piece layout
    tetrominoes) extra="epochs=8 tetromino_layout=dense32"; tiles="1 4" ;;
    # patch 8 keeps 8x8 tokens on 64x64 images, so a dSprites step costs what a Tetrominoes one does
    dsprites) extra="epochs=4 kernel_size=7 patch=8"; tiles="1 4" ;;
    tetrominoes-long) extra="train_size=60000 epochs=2 checkpoint_every=500 tetromino_layout=dense32"; tiles="1 4" ;;
    dsprites-long) extra="train_size=60000 epochs=1 kernel_size=7 patch=8 checkpoint_every=500"; tiles="1 4" ;;
    *) echo "unknown dataset $data" >&2; exit 2 ;;
  esac
  for model in akorn-attn akorn-conv itrsa; do
    case $model in
      akorn-attn) m="model=akorn coupling=attn" ;;
      akorn-conv) m="model=akorn coupling=conv" ;;
      itrsa) m="model=itrsa" ;;
    esac
    name=$data-$model
    if [ ! -f "$OUT/$name/done" ]; then
      rm -rf "runs/objects-table/$name"
      start=$(date +%s)
      akorn objects train preset=cpu views=yiq crop_scale_min=0.2 data=${data%-long} $m $extra name=objects-table/$name > "$OUT/$name.log" 2>&1
      echo $(( $(date +%s) - start )) > "$OUT/$name/train_seconds"
      touch "$OUT/$name/done"
    fi
    for r in $tiles; do
      for align in corner centre reference; do
        [ "$r" = 1 ] && [ $align != corner ] && continue
        if [ $align = corner ]; then tag=x$r; else tag=x$r-$align; fi
        [ -f "$OUT/$name/eval-$tag.json" ] && continue
        akorn objects eval "$OUT/$name" --uptile $r --uptile-align $align --json "$OUT/$name/eval-$tag.json" \
          --figure "$OUT/$name/masks-$tag.png" >> "$OUT/$name.log" 2>&1
      done
    done
  done
done
echo "all runs finished"
