#!/usr/bin/env bash
# Issue 19's GPU checks and figures in one command, from the repository root of a fresh CUDA machine:
#   bash benchmarks/gpu_issue19.sh
# Needs python3 with a CUDA build of torch (and the Triton it ships); arseg need not be installed
# (PYTHONPATH=.). PyAV is needed for the end-to-end runs and tests/test_cuda.py only: where `import av`
# fails, build/gpu-av/av.tar.xz (made by benchmarks/gpu/pack_av.sh; carry build/gpu-av) or wheels in
# .whl/ are unpacked into /tmp, else those steps are skipped. Results and logs go to $OUT (default ./gpu-results): env.txt,
# tests_triton.txt (+ the CUDA-graph tests), gpu_issue19.json (+ its log), segment_e2e.json (+ log),
# tests_cuda.txt. Each step has its own timeout; at worst (every step timed out) the run takes ~9.8 minutes.
set -u
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
log() { echo "[$(date +%T)] $*" >&2; }

if ! $PY -c "import av" 2>/dev/null; then
  if [ -f build/gpu-av/av.tar.xz ]; then
    log "unpacking build/gpu-av/av.tar.xz into /tmp/arseg-site"
    mkdir -p /tmp/arseg-site && tar -C /tmp/arseg-site -xJf build/gpu-av/av.tar.xz &&
      export PYTHONPATH="$PYTHONPATH:/tmp/arseg-site"
  elif compgen -G ".whl/*.whl" >/dev/null; then
    log "installing .whl/*.whl into /tmp/arseg-site"
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/arseg-site .whl/*.whl &&
      export PYTHONPATH="$PYTHONPATH:/tmp/arseg-site"
  fi
fi
HAVE_AV=0
$PY -c "import av" 2>/dev/null && HAVE_AV=1
{
  nvidia-smi
  $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
  $PY -c "import triton; print('triton', triton.__version__)"
  $PY -c "import av; print('av', av.__version__)"
} >"$OUT/env.txt" 2>&1
log "env: $(grep -E '^(python|triton|av) ' "$OUT/env.txt" | tr '\n' ' ')"

log "1/4 Triton CReFF kernels and CUDA graphs on CUDA (tests/test_triton_creff.py tests/test_graphed_step.py -k cuda)"
timeout 60 $PY -m pytest -q -x -p no:cacheprovider tests/test_triton_creff.py tests/test_graphed_step.py -k cuda >"$OUT/tests_triton.txt" 2>&1
log "    exit $? ($(tail -n 1 "$OUT/tests_triton.txt"))"

log "2/4 model-level figures, CReFF alone, one group with CUDA graphs off/on, kernel launch settings (benchmarks/gpu_issue19.py)"
timeout 300 $PY benchmarks/gpu_issue19.py --out "$OUT" 2>&1 | tee "$OUT/gpu_issue19.log" >&2
log "    exit ${PIPESTATUS[0]}"

if [ "$HAVE_AV" = 1 ]; then
  log "3/4 end to end, 48 frames, float32 and --half, --cuda-graphs off and on (benchmarks/bench_segment.py)"
  timeout 150 $PY benchmarks/bench_segment.py --parts speed --device cuda --half --frames 48 --repeats 3 \
    >"$OUT/segment_e2e.json" 2>"$OUT/segment_e2e.log"
  log "    exit $?"
  log "4/4 tests/test_cuda.py"
  timeout 75 $PY -m pytest -q -x -p no:cacheprovider tests/test_cuda.py >"$OUT/tests_cuda.txt" 2>&1
  log "    exit $? ($(tail -n 1 "$OUT/tests_cuda.txt"))"
else
  log "3/4 and 4/4 skipped: no PyAV (see the top of this script)"
fi
log "done: $(ls "$OUT" | tr '\n' ' ')"
