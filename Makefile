# Set-up, demo, tests and benchmarks. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARSEG := $(VENV)/bin/arseg
# The CPU wheel of torch is pinned here: an unpinned install pulls a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
SAMPLE := samples/synthstreet.mp4
DEMO_OUT := demo-out

.PHONY: setup demo test test-all test-scaleout bench lint clean weights

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py $(wildcard arseg_cli/video/hevc/native/*.[ch] arseg_cli/model/_creff_native.c arseg_cli/model/_creff_native_real.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev,onnx,ray,triton]"
	touch $@

demo: setup
	$(ARSEG) info $(SAMPLE)
	$(ARSEG) segment $(SAMPLE) -o $(DEMO_OUT)/masks --video $(DEMO_OUT)/colour.mp4 --overlay $(DEMO_OUT)/overlay.mp4 --force
	@echo "demo: label PNGs in $(DEMO_OUT)/masks, colour masks $(DEMO_OUT)/colour.mp4, overlay $(DEMO_OUT)/overlay.mp4"

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

# Scale-out on a two-node Ray cluster started on this machine (tests/test_scaleout.py, ~2 min); CI runs it too.
test-scaleout: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m cluster tests/test_scaleout.py

# Reliability (docs/RELIABILITY.md): the bad-input corpus and a larger mutation fuzz than `make test` runs
# (FUZZ_COUNT mutants per container, at most FUZZ_BUDGET_S seconds each); findings are kept in build/fuzz.
FUZZ_COUNT ?= 2000
FUZZ_BUDGET_S ?= 900
FUZZ_SEED ?= 0
.PHONY: fuzz
fuzz: setup
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_corpus.py --count $(FUZZ_COUNT) --budget-s $(FUZZ_BUDGET_S) --seed $(FUZZ_SEED) --keep build/fuzz

# The HEVC bitstream parser (a C extension) under AddressSanitizer and UBSan: a separate build in
# build/hevc-asan, loaded by the HEVC tests through ARSEG_HEVC_NATIVE (run after `make setup`).
HEVC_ASAN := build/hevc-asan
.PHONY: hevc-asan
hevc-asan:
	rm -rf $(HEVC_ASAN)
	CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" \
		$(PY) setup.py -q build_ext --build-lib $(HEVC_ASAN)/lib --build-temp $(HEVC_ASAN)/tmp
	ARSEG_HEVC_NATIVE="$$(ls $(HEVC_ASAN)/lib/arseg_cli/video/hevc/_hevcparse*.so)" \
		LD_PRELOAD="$$($${CC:-cc} -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 \
		UBSAN_OPTIONS=print_stacktrace=1 OMP_NUM_THREADS=1 \
		$(PY) -m pytest -q -p no:cacheprovider tests/test_hevc_*.py

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b" >&2; $(PY) $$b || exit 1; done

# The default weights (weights/README.md): SynthStreet data, phase hr, phase ar (0.5x), held-out evaluation,
# then weights/default.safetensors and its model card. About 2 x 45 min of training on a 2-core CPU; each
# training step resumes from its checkpoint when interrupted (re-run `make weights`). On a machine shared
# with other work, OMP_NUM_THREADS=1 avoids torch's 5-10x slowdown when a thread is descheduled.
WEIGHTS_WORK ?= build/weights
W := $(WEIGHTS_WORK)
SYNTH_TRAIN := --clips 21 --frames 48 --size 360x480 --seed 1
SYNTH_TEST := --clips 4 --frames 24 --size 360x480 --seed 2
# The shipped weights predate the official-recipe defaults of `arseg train` (OHEM, scale 0.5-2.5 of whole
# frames, colour jitter, kaiming CReFF, input padded to a multiple of 32): these options keep the recipe they
# were made with.
TRAIN_COMMON := --arch camvid-bise18 --batch 8 --crop 192x256 --distance official --cache $(W)/pairs --checkpoint-every 250 --seed 0 \
	--loss ce --aug-scale 0.75 1.25 --jitter 0 --augment-variants 0 --input-multiple 1
HR_STEPS ?= 2500
AR_STEPS ?= 1500
CREFF_INIT ?= identity
# CReFF from the first step of phase ar (the official recipe: the first half without it): AR 49.44 vs 48.87
AR_PLAIN_FRACTION ?= 0
resume_if_started = $(if $(wildcard $(1).ckpt),--resume,)

weights: $(W)/eval.json $(W)/creff-diagnosis.json
	$(PY) weights/model_card.py --hr $(W)/hr.safetensors --ar $(W)/ar.safetensors --eval $(W)/eval.json \
		--diagnosis $(W)/creff-diagnosis.json --out weights

$(W)/data/%/manifest.json: | $(VENV)/.installed
	$(ARSEG) synth -o $(W)/data/$* $(if $(filter train,$*),$(SYNTH_TRAIN),$(SYNTH_TEST)) --force

$(W)/hr.safetensors: $(W)/data/train/manifest.json
	$(ARSEG) train $(W)/data --phase hr -o $@ --steps $(HR_STEPS) $(TRAIN_COMMON) $(call resume_if_started,$@)

$(W)/ar.safetensors: $(W)/hr.safetensors
	$(ARSEG) train $(W)/data --phase ar --hr $< --scale 0.5 --lr-backbone shared --creff-init $(CREFF_INIT) --plain-fraction $(AR_PLAIN_FRACTION) -o $@ --steps $(AR_STEPS) --fp16 \
		$(TRAIN_COMMON) $(call resume_if_started,$@)

$(W)/creff-diagnosis.json: $(W)/ar.safetensors $(W)/data/test/manifest.json
	$(PY) benchmarks/diagnose_creff.py $(W)/data --weights $< --split test --cache $(W)/pairs-test > $@.part
	mv $@.part $@

$(W)/eval.json: $(W)/ar.safetensors $(W)/data/test/manifest.json
	$(ARSEG) eval $(W)/data --weights $< --split test --cache $(W)/pairs-test --json > $@.part
	mv $@.part $@

lint: setup
	$(PY) -m compileall -q arseg_cli tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
