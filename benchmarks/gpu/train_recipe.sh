#!/usr/bin/env bash
# The official-recipe default weights trained on a lent GPU in one device call (docs/TRAINING.md, "On a
# GPU"): SynthStreet data (as `make weights`), phase hr, phase lr (the trained LR baseline), phase ar with
# the cached HR features, the held-out evaluation and the CReFF diagnosis. Results go to $OUT: the eval
# JSON, the diagnosis, the logs, and the weights as float16 files split into pieces under 16 MB (the
# device tool brings back at most 8 files of 16 MB); `benchmarks/gpu/join_weights.sh` puts them together.
#
# On the device machine (PyAV is not installed there; the tarball comes from `benchmarks/gpu/pack_av.sh`):
#   bash benchmarks/gpu/train_recipe.sh          # carry: build/gpu-av
# Here, a dry run on the CPU with a tiny set: DRY=1 OUT=/tmp/gpu-out bash benchmarks/gpu/train_recipe.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:?set OUT to the folder that comes back}
WORK=${WORK:-/tmp/arseg-gpu}
PY=${PY:-python3}
if [ -f build/gpu-av/av.tar.xz ]; then
  mkdir -p /tmp/site && tar -xJf build/gpu-av/av.tar.xz -C /tmp/site
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
ARSEG="$PY -m arseg_cli"
if [ "${DRY:-0}" = 1 ]; then
  TRAIN="--clips 2 --frames 14 --size 64x96 --seed 1"; TEST="--clips 1 --frames 14 --size 64x96 --seed 2"
  HR_EPOCHS=1; LR_EPOCHS=1; AR_EPOCHS=2; DEVICE=cpu; WORKERS=0; BATCH=2
else
  TRAIN="--clips 21 --frames 48 --size 360x480 --seed 1"; TEST="--clips 4 --frames 24 --size 360x480 --seed 2"
  HR_EPOCHS=${HR_EPOCHS:-60}; LR_EPOCHS=${LR_EPOCHS:-40}; AR_EPOCHS=${AR_EPOCHS:-80}; DEVICE=cuda
  WORKERS=${WORKERS:-12}; BATCH=8
fi
COMMON="--arch camvid-bise18 --batch $BATCH --device $DEVICE --workers $WORKERS --cache $WORK/pairs --checkpoint-every 1000 --seed 0"
[ "$DEVICE" = cuda ] && COMMON="$COMMON --amp"
mkdir -p "$WORK" "$OUT"
stamp() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/log.txt"; }

stamp "synth"
$ARSEG synth -o "$WORK/data/train" $TRAIN --force > /dev/null
$ARSEG synth -o "$WORK/data/test" $TEST --force > /dev/null
stamp "phase hr ($HR_EPOCHS epochs)"
$ARSEG train "$WORK/data" --phase hr -o "$WORK/hr.safetensors" --epochs "$HR_EPOCHS" $COMMON --force 2>>"$OUT/log.txt"
stamp "phase ar ($AR_EPOCHS epochs)"
$ARSEG train "$WORK/data" --phase ar --hr "$WORK/hr.safetensors" --scale 0.5 -o "$WORK/ar.safetensors" \
  --epochs "$AR_EPOCHS" --fp16 $COMMON --force 2>>"$OUT/log.txt"
stamp "eval"
EVAL="--split test --cache $WORK/pairs-test --device $DEVICE --workers $WORKERS --json"
$ARSEG eval "$WORK/data" --weights "$WORK/ar.safetensors" $EVAL > "$OUT/eval.json"
stamp "diagnosis"
$PY benchmarks/diagnose_creff.py "$WORK/data" --weights "$WORK/ar.safetensors" --split test --cache "$WORK/pairs-test" > "$OUT/creff-diagnosis.json" || stamp "diagnosis failed"
split -b 15M -d "$WORK/ar.safetensors" "$OUT/ar.safetensors.part"
stamp "phase lr ($LR_EPOCHS epochs)"
$ARSEG train "$WORK/data" --phase lr --scale 0.5 -o "$WORK/lr.safetensors" --epochs "$LR_EPOCHS" --fp16 $COMMON --force 2>>"$OUT/log.txt"
$ARSEG eval "$WORK/data" --weights "$WORK/ar.safetensors" --lr-weights "$WORK/lr.safetensors" $EVAL > "$OUT/eval-lr.json"
stamp "done"
