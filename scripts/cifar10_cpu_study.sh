#!/usr/bin/env bash
# The CIFAR-10 robustness study of docs/classify.md on a 2-core CPU: the conv AKOrN, the attention
# AKOrN and ResNet-18 trained with the same budget (45 minutes each, side by side, one thread each,
# bf16), then evaluated and audited.
#   bash scripts/cifar10_cpu_study.sh train   CIFAR_FOLDER
#   bash scripts/cifar10_cpu_study.sh eval    EXACT_NPZ
#   bash scripts/cifar10_cpu_study.sh audit   EXACT_NPZ
# The longer study: the conv AKOrN recipe the search picked (kernels 3, T=1) and ResNet-18 side by
# side with a cosine schedule, capped at 92 minutes (both ended at max_steps, after 81 and 78), then
# clean accuracy on the JPEG test images and the audit of both and of pretrained:cifar10:
#   bash scripts/cifar10_cpu_study.sh train-long CIFAR_FOLDER
#   bash scripts/cifar10_cpu_study.sh audit-long CIFAR_FOLDER EXACT_NPZ
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
train-long)
    # max_steps from a 2.5-minute probe of each on the 2-core EPYC, so both fill about the same time
    common=(data="$2/train" test_data="$2/test" threads=1 time_limit=92 lr_schedule=cosine out_dir=runs)
    OMP_NUM_THREADS=1 akorn classify train preset=cpu model=akorn kernel_sizes=3 steps=1 max_steps=2100 \
        "${common[@]}" name=cifar10-akorn-k3t1 > runs/logs/cifar10-akorn-k3t1.log 2>&1 &
    OMP_NUM_THREADS=1 akorn classify train preset=cpu model=resnet18 max_steps=2800 \
        "${common[@]}" name=cifar10-resnet18-92 > runs/logs/cifar10-resnet18-92.log 2>&1 &
    wait
    ;;
audit-long)
    # n is what 45 minutes of two cores allow, all audits side by side: 500 images for the attacks
    # with one to four EoT samples, 20 where E or M multiply the cost, 10 for Square (each report
    # gives n beside every figure; a stopped audit reports what it recorded, and --resume continues it)
    n=$3
    resnet=runs/cifar10-resnet18-92
    common=(--data "$n" --threads 1 --quiet)
    export OMP_NUM_THREADS=1
    audit500() {  # RUN OUT
        akorn classify audit "$1" "${common[@]}" --limit 500 --sections eot,sweep,fixed,transfer --eot 1,4 \
            --apgd-eot 1 --sweep 8/255,32/255,1 --sweep-eot 1 --surrogate $resnet --out "$2/audit500"
    }
    audit20() {  # RUN OUT EOT
        akorn classify audit "$1" "${common[@]}" --limit 20 --sections eot,mean --eot "$3" --apgd-eot 4 \
            --means 8,32 --out "$2/audit20"
    }
    audit500 runs/cifar10-akorn-k3t1 runs/cifar10-akorn-k3t1 > runs/logs/audit-long-akorn.log 2>&1 &
    audit500 pretrained:cifar10 runs/pretrained-cifar10 > runs/logs/audit-long-attn.log 2>&1 &
    audit20 runs/cifar10-akorn-k3t1 runs/cifar10-akorn-k3t1 16,64 > runs/logs/audit20-akorn.log 2>&1 &
    audit20 pretrained:cifar10 runs/pretrained-cifar10 16 > runs/logs/audit20-attn.log 2>&1 &
    akorn classify audit runs/cifar10-akorn-k3t1 "${common[@]}" --limit 10 --sections square \
        --square-queries 5000 --out runs/cifar10-akorn-k3t1/audit-square > runs/logs/audit-square-akorn.log 2>&1 &
    (
        for run in runs/cifar10-akorn-k3t1 $resnet; do
            akorn classify eval $run --data "$2/test" --attacks none --corruptions none --threads 1 --quiet \
                --out $run/clean
        done
        akorn classify audit $resnet "${common[@]}" --limit 500 --eot 1 --apgd-eot 1 --sweep-eot 1 --means 1 \
            --sections eot,sweep,fixed,mean --out $resnet/audit500
        akorn classify audit $resnet "${common[@]}" --limit 100 --sections square --square-queries 5000 \
            --out $resnet/audit-square
    ) > runs/logs/audit-long-resnet18.log 2>&1 &
    wait
    ;;
*)
    echo "usage: $0 train|eval|audit|train-long|audit-long ... (see the top of this file)" >&2
    exit 2
    ;;
esac
