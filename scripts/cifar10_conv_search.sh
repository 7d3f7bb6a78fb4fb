#!/usr/bin/env bash
# Short, measured runs that pick the conv AKOrN's CPU recipe (docs/classify.md): each variant of
# preset=cpu trains for the same wall time on one thread, two at a time, and is scored on 2,000
# evenly spread test images at the end; scripts/search_table.py ranks them.
#   bash scripts/cifar10_conv_search.sh CIFAR_FOLDER [MINUTES] [VARIANT ...]
# CIFAR_FOLDER holds train/<class>/*.jpg and test/<class>/*.jpg (the JPEG archives unpacked).
set -euo pipefail
cd "$(dirname "$0")/.."
folder=$1
minutes=${2:-12}
shift $(( $# > 1 ? 2 : 1 ))
declare -A variants=(
    [base]=""
    [k3]="kernel_sizes=3"
    [k3-t2]="kernel_sizes=3 steps=2"
    [k3-b64]="kernel_sizes=3 batch_size=64"
    [k3-lr2e-3]="kernel_sizes=3 lr=2e-3"
    [k3-mix]="kernel_sizes=3 augment=flip,crop,noise"
    [k3-c64]="kernel_sizes=3 channels=64"
    [k5]="kernel_sizes=5"
    [k3-t1]="kernel_sizes=3 steps=1"
    [k3-t2-b64]="kernel_sizes=3 steps=2 batch_size=64"
    [k3-t2-lr2e-3]="kernel_sizes=3 steps=2 lr=2e-3"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(base k3 k3-t2 k3-b64 k3-lr2e-3 k3-mix)
mkdir -p runs/logs runs/conv-search
for name in "${names[@]}"; do
    [ -n "${variants[$name]+set}" ] || { echo "unknown variant: $name (have: ${!variants[*]})" >&2; exit 2; }
done
running=0
for name in "${names[@]}"; do
    # shellcheck disable=SC2086  # the variant's words split on purpose
    OMP_NUM_THREADS=1 akorn classify train preset=cpu model=akorn ${variants[$name]} data="$folder/train" \
        test_data="$folder/test" threads=1 time_limit="$minutes" out_dir=runs/conv-search name="$name" \
        > "runs/logs/conv-search-$name.log" 2>&1 &
    running=$((running + 1))
    if [ $running -ge 2 ]; then wait -n; running=$((running - 1)); fi
done
wait
