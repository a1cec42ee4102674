# TGS Salt: train the empty-image classifier and the U-Net segmenter in k folds, join them, submit.
# Every target is a thin call of a `python -m PACKAGE.MODULE` entry point; each of those skips the
# work that is already finished, so any target can be re-run after an interruption.

## Kaggle-layout folder: train/images, train/masks, train.csv, depths.csv, test/images, sample_submission.csv
DATA      ?= data/tgs
## everything the runs write
OUT       ?= out
## smoke, cpu, cpu-random, full or full-lite2 (segmenter/presets.py); auto is full when the Keras backend sees a GPU, else cpu
PRESET    ?= auto
## number of folds (>= 2); OUT/folds.csv is made once and shared by both models
FOLDS     ?= 5
## any folder of 101x101 PNGs to submit for
TEST      ?= $(DATA)/test/images
## the classifier's backbone (empty: the preset's): densenet121, inceptionresnetv2, efficientnet_lite0/1/2, seresnext50
BACKBONE  ?=
## coverage: folds stratified by salt coverage; mosaic: also each mosaic of neighbouring tiles in one fold
FOLDS_BY  ?= coverage
## auto (the preset's choice for the device: bfloat16 on a GPU for full and cpu), bfloat16 or float32
PRECISION ?= auto
## Keras' output while training: auto (a progress bar on a terminal, one line an epoch into a file or pipe), 0, 1 or 2
VERBOSE   ?= auto
## the competition's zip (kaggle competitions download) that make data unpacks
DOWNLOAD  ?= tgs-salt-identification-challenge.zip
## 1: make install installs the CUDA build of the backend; by default 1 where nvidia-smi lists a GPU
GPU       ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1 || echo 0)
# On a GPU, JAX: Keras compiles the whole step with XLA there (docs/gpu.md); on a CPU, TensorFlow.
## Keras backend: tensorflow, jax or torch; jax with GPU=1, else tensorflow
BACKEND   ?= $(if $(filter 1,$(GPU)),jax,tensorflow)

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(if $(filter 1,$(GPU)),gpu-$(BACKEND),cpu)
CUDA_jax        := jax[cuda12]>=0.4.30
CUDA_tensorflow := tensorflow[and-cuda]>=2.16,<2.22
CUDA_torch      := torch
export KERAS_BACKEND := $(BACKEND)
## TensorFlow's C++ log level: 3 (the default) hides its load-time and CUDA chatter, 0 shows everything
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONUNBUFFERED := 1

RUN_ARGS := --data $(DATA) --out $(OUT) --preset $(PRESET) --folds $(FOLDS) --folds-by $(FOLDS_BY) \
            --precision $(PRECISION) --verbose $(VERBOSE)
SEGMENTER_TRAIN  := $(PY) -m segmenter.train $(RUN_ARGS)
CLASSIFIER_TRAIN := $(PY) -m classifier.train $(RUN_ARGS) $(if $(BACKBONE),--backbone $(BACKBONE))
MOSAIC := $(if $(filter mosaic,$(FOLDS_BY)),$(OUT)/mosaic.csv)
# Every input checked in full before anything long starts (salt.check: train images, masks, CSVs, RLE,
# ids, every test image): a bad file stops the run in seconds with one `error:` line that names it.
CHECK_INPUTS := $(PY) -m salt.check $(DATA) --test $(TEST) --cache $(OUT)/cache

DEMO_DATA  := $(OUT)/demo/data
DEMO_OUT   := $(OUT)/demo
## number of folds of make demo
DEMO_FOLDS ?= 3

.PHONY: install data mosaic check-inputs demo train-classifier train-segmenter submit bench bench-predict gpu-check test clean help

## .venv from requirements.txt and requirements-dev.txt (GPU=1: with the backend's CUDA build)
install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-reference.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
ifneq ($(GPU),1)
	# The PyTorch reference networks of the converter tests (CPU torch; not on a GPU machine, see the file).
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-reference.txt
	# The reference SE-ResNeXt50 for the converter test; its dependencies (torchvision) are not needed.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps pretrainedmodels==0.7.4
endif
ifeq ($(GPU),1)
	# The CUDA build of the $(BACKEND) backend.
	$(PY) -m pip install -q --disable-pip-version-check "$(CUDA_$(BACKEND))"
endif
	touch $@

## unpacks DOWNLOAD into DATA in the Kaggle layout and checks it
data: $(STAMP)
	$(PY) -m salt.kaggle --zip $(DOWNLOAD) --data $(DATA)

# Neighbouring tiles found again by their edges: OUT/mosaic.csv (id,mosaic,row,col), for folds by mosaic.
## OUT/mosaic.csv: neighbouring tiles found again by their edges
mosaic: $(STAMP)
	$(PY) -m salt.mosaic --data $(DATA) --out $(OUT)

## every input checked in full before anything long starts (salt.check: train, masks, CSVs, test images)
check-inputs: | $(STAMP)
	$(CHECK_INPUTS)

$(OUT)/mosaic.csv: | $(STAMP) check-inputs
	$(PY) -m salt.mosaic --data $(DATA) --out $(OUT)

$(OUT)/classifier/metrics.json: | $(STAMP) check-inputs $(MOSAIC)
	$(CLASSIFIER_TRAIN)

$(OUT)/segmenter/metrics.json: | $(STAMP) check-inputs $(MOSAIC)
	$(SEGMENTER_TRAIN)

## OUT/classifier: k folds, out-of-fold P(empty), metrics.json
train-classifier: $(STAMP) check-inputs $(MOSAIC)
	$(CLASSIFIER_TRAIN)

## OUT/segmenter: k folds x rounds, out-of-fold masks, metrics.json
train-segmenter: $(STAMP) check-inputs $(MOSAIC)
	$(SEGMENTER_TRAIN)

# Make trains whatever model is missing, then predicts TEST, tunes on out-of-fold predictions,
# writes and validates the submission, and writes the report.
# The tile mosaic (seconds) lets the tuning try the rules that follow labelled neighbours.
## trains what is missing, predicts TEST, tunes, writes OUT/submission.csv and OUT/report.html
submit: check-inputs $(OUT)/segmenter/metrics.json $(OUT)/classifier/metrics.json $(OUT)/mosaic.csv
	$(PY) -m segmenter.predict --out $(OUT) --images $(TEST) --name submit
	$(PY) -m classifier.predict --out $(OUT) --images $(TEST) --name submit
	$(PY) -m ensemble.tune --data $(DATA) --out $(OUT)
	$(PY) -m ensemble.submit --data $(DATA) --out $(OUT) --pred submit --images $(TEST)
	$(PY) -m ensemble.report --data $(DATA) --out $(OUT)

# The whole pipeline on the built-in synthetic data set, with the smoke preset.
## the whole pipeline on a built-in synthetic data set (smoke preset, DEMO_FOLDS folds) into OUT/demo
demo: $(STAMP)
	test -f $(DEMO_DATA)/train.csv || $(PY) -m salt.synthetic $(DEMO_DATA) --train 200 --test 50
	$(MAKE) --no-print-directory submit DATA=$(DEMO_DATA) OUT=$(DEMO_OUT) PRESET=smoke FOLDS=$(DEMO_FOLDS) TEST=$(DEMO_DATA)/test/images
	@echo "demo done: submission $(DEMO_OUT)/submission.csv, report $(DEMO_OUT)/report.html"

## times the full preset's networks and the trainers' fit epoch against its bare steps (OUT/bench)
bench: $(STAMP)
	$(PY) -m bench.run --out $(OUT)/bench

## synthetic test images that make bench-predict predicts (the competition's test set has 18,000)
IMAGES    ?= 18000
## the prediction step by batch size, threads and compiled step, then IMAGES synthetic test images (or TEST=FOLDER) predicted and submitted with random cpu-preset fold models: images/s and peak memory per step (OUT/bench-predict)
bench-predict: $(STAMP)
	$(PY) -m bench.predict_step --out $(OUT)/bench-predict
	$(PY) -m bench.stream --out $(OUT)/bench-predict --images $(IMAGES) $(if $(filter command line environment,$(origin TEST)),--test $(TEST))

# On a machine with a GPU and the project installed: installs nothing, trains fold 0 of the full preset
# scaled to a few minutes and prints one table (python3 -m bench.gpu_check where there is no .venv).
## on a GPU: fold 0 of the full preset scaled to minutes, one table (installs nothing)
gpu-check:
	$(PY) -m bench.gpu_check --data $(DATA) --out $(OUT)/gpu-check

## the test suite, offline, spread over the cores
test: $(STAMP)
	$(PY) -m pytest tests -q -n auto --dist loadfile --no-loadscope-reorder

## removes OUT
clean:
	rm -rf $(OUT)

# Read from this file: every .PHONY target and every `?=` variable, each with the `## ` line above it;
# a variable's default as written, and its value now where that differs.
HELP_VARS = $(shell sed -n 's/^\(export \)\{0,1\}\([A-Z_]*\) *?=.*/\2/p' $(firstword $(MAKEFILE_LIST)))
## every target and every variable with its default, one line each
help:
	@$(foreach v,$(HELP_VARS),HELP_NOW_$(v)='$($(v))') awk ' \
	  /^## / { doc = substr($$0, 4); next } \
	  /^\.PHONY:/ { n = split(substr($$0, 8), p, " "); for (i = 1; i <= n; i++) phony[++nt] = p[i] } \
	  /^(export )?[A-Z_]+ *\?=/ { \
	    name = $$0; sub(/^export /, "", name); def = name; sub(/ *\?=.*/, "", name); sub(/^[A-Z_]+ *\?= */, "", def); \
	    now = ENVIRON["HELP_NOW_" name]; vars[++nv] = name; vdef[name] = def; \
	    vdoc[name] = (doc == "" ? "?" : doc) (now != def ? " (now: " now ")" : "") } \
	  /^[a-z][a-z-]*:/ && doc != "" { name = $$0; sub(/:.*/, "", name); tdoc[name] = doc } \
	  { doc = "" } \
	  END { print "targets:"; \
	        for (i = 1; i <= nt; i++) printf "  make %-17s %s\n", phony[i], (phony[i] in tdoc ? tdoc[phony[i]] : "?"); \
	        print "variables (make TARGET NAME=VALUE), with their defaults:"; \
	        for (i = 1; i <= nv; i++) printf "  %-30s %s\n", vars[i] "=" vdef[vars[i]], vdoc[vars[i]] }' \
	  $(firstword $(MAKEFILE_LIST))
