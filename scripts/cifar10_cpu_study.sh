#!/usr/bin/env bash
# The CIFAR-10 robustness study of docs/classify.md on a 2-core CPU: the conv AKOrN, the attention
# AKOrN and ResNet-18 trained with the same budget (45 minutes each, side by side, one thread each,
# bf16), then evaluated and audited.
#   bash scripts/cifar10_cpu_study.sh train   CIFAR_FOLDER
#   bash scripts/cifar10_cpu_study.sh eval    EXACT_NPZ
#   bash scripts/cifar10_cpu_study.sh audit   EXACT_NPZ
# CIFAR_FOLDER holds train/<class>/*.jpg and test/<class>/*.jpg (../shared/data/cifar10's JPEG
# archives unpacked); EXACT_NPZ is the 1,000 exact-pixel test images (cifar10-test1000-lossless.npz).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs/logs
stage=$1
case $stage in
train)
    common=(data="$2/train" test_data="$2/test" precision=bf16 threads=1 time_limit=45 out_dir=runs)
    akorn classify train preset=cpu model=akorn "${common[@]}" name=cifar10-akorn-cpu \
        > runs/logs/cifar10-akorn-cpu.log 2>&1 &
    akorn classify train preset=cpu model=akorn-attn channels=128 layers=2 steps=4 heads=4 n=4 patch=4 \
        "${common[@]}" name=cifar10-akorn-attn-cpu > runs/logs/cifar10-akorn-attn-cpu.log 2>&1 &
    akorn classify train preset=cpu model=resnet18 "${common[@]}" name=cifar10-resnet18-cpu \
        > runs/logs/cifar10-resnet18-cpu.log 2>&1 &
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
audit)
    # n is what two cores allow in half an hour: the models' forward passes set the cost, E=16 the most
    common=(--data "$2" --threads 1 --quiet --surrogate runs/cifar10-resnet18-cpu --eot 1,4,16 --apgd-eot 1,4
            --sweep-eot 1 --means 1,8 --sections eot,sweep,fixed,mean,transfer)
    akorn classify audit runs/cifar10-akorn-attn-cpu "${common[@]}" --limit 100 \
        > runs/logs/audit-akorn-attn.log 2>&1 &
    akorn classify audit runs/cifar10-akorn-cpu "${common[@]}" --limit 50 --apgd-eot 1 \
        > runs/logs/audit-akorn.log 2>&1 &
    akorn classify audit runs/cifar10-resnet18-cpu --data "$2" --threads 1 --quiet --limit 500 --eot 1 \
        --apgd-eot 1 --sweep-eot 1 --means 1 > runs/logs/audit-resnet18.log 2>&1
    # the gradient-free attack, 5,000 queries, on the attention AKOrN
    akorn classify audit runs/cifar10-akorn-attn-cpu --data "$2" --threads 1 --quiet --limit 20 \
        --sections square --square-queries 5000 --out runs/cifar10-akorn-attn-cpu/audit-square \
        > runs/logs/audit-akorn-attn-square.log 2>&1
    wait
    ;;
*)
    echo "usage: $0 train CIFAR_FOLDER | eval EXACT_NPZ | audit EXACT_NPZ" >&2
    exit 2
    ;;
esac
