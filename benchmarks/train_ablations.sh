#!/usr/bin/env bash
# The phase-ar ablation runs of the model card (weights/README.md, "Ablations"), each resumed from its
# checkpoint when interrupted: train, evaluate on the held-out split, diagnose CReFF, record the run in
# weights/ablations/. Uses the `make weights` data and pair caches (build/weights) and starts from the
# shipped HR network. One thread per run; RUNS picks some: RUNS="s-own lr-trained" bash benchmarks/train_ablations.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
W=${W:-build/weights}
OUT=${OUT:-build/exp}
RUNS=${RUNS:-"s-own s-long lr-trained"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"

# The shipped recipe (Makefile: TRAIN_COMMON, identity CReFF, CReFF from the first step, shared backbone),
# with 8 augmentation forms so that the frozen HR features are cached.
SHIPPED=(--arch camvid-bise18 --batch 8 --crop 192x256 --distance official --cache "$W/pairs" --checkpoint-every 250
         --seed 0 --loss ce --aug-scale 0.75 1.25 --jitter 0 --input-multiple 1)  # as they ran: unpadded
AR=(--phase ar --hr weights/default.safetensors --scale 0.5 --creff-init identity --plain-fraction 0 --fp16 --augment-variants 8)

train() {  # name, arseg train options...
  local name=$1; shift
  local resume=(); [ -f "$OUT/$name.safetensors.ckpt" ] && resume=(--resume)
  [ -f "$OUT/$name.safetensors" ] || $PY -m arseg_cli train "$W/data" "$@" -o "$OUT/$name.safetensors" "${resume[@]}"
}

record() {  # name, order, change
  local name=$1
  if [ ! -f "$OUT/eval-$name.json" ]; then
    $PY -m arseg_cli eval "$W/data" --weights "$OUT/$name.safetensors" --split test --cache "$W/pairs-test" \
        --json > "$OUT/eval-$name.json.part"
    mv "$OUT/eval-$name.json.part" "$OUT/eval-$name.json"
  fi
  if [ ! -f "$OUT/diag-$name.json" ]; then
    $PY benchmarks/diagnose_creff.py "$W/data" --weights "$OUT/$name.safetensors" --split test \
        --cache "$W/pairs-test" > "$OUT/diag-$name.json.part"
    mv "$OUT/diag-$name.json.part" "$OUT/diag-$name.json"
  fi
  $PY benchmarks/ablation_record.py --name "$name" --order "$2" --change "$3" --weights "$OUT/$name.safetensors" \
      --eval "$OUT/eval-$name.json" --diagnosis "$OUT/diag-$name.json" -o "weights/ablations/$name.json"
}

for run in $RUNS; do
  case $run in
    s-own)
      train ar-S-own "${SHIPPED[@]}" "${AR[@]}" --lr-backbone own --steps 1500
      record ar-S-own 12 "the shipped recipe with an own LR backbone (--lr-backbone own, the paper's) and 8 augmentation forms" ;;
    s-long)
      train ar-S-long "${SHIPPED[@]}" "${AR[@]}" --lr-backbone shared --steps 4500
      record ar-S-long 13 "the shipped recipe trained 3x longer (4500 steps) with 8 augmentation forms" ;;
    lr-trained)  # the paper's separately trained LR baseline, then its row beside the default weights
      train lr-trained "${SHIPPED[@]}" --phase lr --scale 0.5 --steps 2500
      if [ ! -f "$OUT/eval-default-lrt.json" ]; then
        $PY -m arseg_cli eval "$W/data" --weights weights/default.safetensors --lr-weights "$OUT/lr-trained.safetensors" \
            --split test --cache "$W/pairs-test" --json > "$OUT/eval-default-lrt.json.part"
        mv "$OUT/eval-default-lrt.json.part" "$OUT/eval-default-lrt.json"
      fi ;;
    *) echo "unknown run $run (s-own, s-long, lr-trained)" >&2; exit 2 ;;
  esac
done
