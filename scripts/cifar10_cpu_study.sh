#!/usr/bin/env bash
# The CIFAR-10 robustness study of docs/classify.md on a 2-core CPU: AKOrN and ResNet-18 trained with
# the same budget (65 minutes each, side by side, one thread each; the attention AKOrN's 30 minutes
# beside them), then evaluated.
#   bash scripts/cifar10_cpu_study.sh train   CIFAR_FOLDER
#   bash scripts/cifar10_cpu_study.sh eval    EXACT_NPZ
# CIFAR_FOLDER holds train/<class>/*.jpg and test/<class>/*.jpg (../shared/data/cifar10's JPEG
# archives unpacked); EXACT_NPZ is the 1,000 exact-pixel test images (cifar10-test1000-lossless.npz).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs/logs
stage=$1
case $stage in
train)
    for m in akorn resnet18; do
        akorn classify train preset=cpu model=$m data="$2" threads=1 time_limit=65 name=cifar10-$m-cpu \
            out_dir=runs > runs/logs/cifar10-$m-cpu.log 2>&1 &
    done
    akorn classify train preset=cpu model=akorn-attn channels=128 layers=2 steps=4 heads=4 n=4 patch=4 \
        data="$2" threads=1 time_limit=30 name=cifar10-akorn-attn-cpu out_dir=runs \
        > runs/logs/cifar10-akorn-attn-cpu.log 2>&1 &
    wait
    ;;
eval)
    common=(--attack-data "$2" --threads 1 --quiet)
    # ResNet-18: everything, one process
    akorn classify eval runs/cifar10-resnet18-cpu "${common[@]}" --rand-limit 20 --corruption-limit 500 \
        --out runs/cifar10-resnet18-cpu/robustness > runs/logs/eval-resnet18.log 2>&1 &
    # AKOrN: PGD-20 with EoT and standard AutoAttack in one process ...
    akorn classify eval runs/cifar10-akorn-cpu "${common[@]}" --attacks pgd,autoattack --eot 4 --corruptions none \
        --limit 1000 --batch-size 25 --out runs/cifar10-akorn-cpu/robustness-attacks \
        > runs/logs/eval-akorn-attacks.log 2>&1 &
    wait -n
    # ... clean accuracy, ECE and corruptions, then AutoAttack-rand, in another once a core is free
    akorn classify eval runs/cifar10-akorn-cpu "${common[@]}" --attacks none --corruption-limit 500 \
        --out runs/cifar10-akorn-cpu/robustness > runs/logs/eval-akorn.log 2>&1
    akorn classify eval runs/cifar10-akorn-cpu "${common[@]}" --attacks autoattack-rand --rand-limit 20 \
        --corruptions none --limit 1000 --batch-size 20 --out runs/cifar10-akorn-cpu/robustness-rand \
        > runs/logs/eval-akorn-rand.log 2>&1
    wait
    ;;
*)
    echo "usage: $0 train CIFAR_FOLDER | eval EXACT_NPZ" >&2
    exit 2
    ;;
esac
