# TGS Salt: train the empty-image classifier and the U-Net segmenter in k folds, join them, submit.
# Every target is a thin call of a `python -m PACKAGE.MODULE` entry point; each of those skips the
# work that is already finished, so any target can be re-run after an interruption.

DATA      ?= data/tgs
OUT       ?= out
PRESET    ?= auto
FOLDS     ?= 5
TEST      ?= $(DATA)/test/images
BACKBONE  ?= densenet121
FOLDS_BY  ?= coverage
PRECISION ?= auto
VERBOSE   ?= auto
DOWNLOAD  ?= tgs-salt-identification-challenge.zip
# GPU=1 installs the CUDA build of the backend; by default it is 1 where nvidia-smi lists a GPU.
GPU       ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1 || echo 0)
# On a GPU, JAX: Keras compiles the whole step with XLA there (README, "GPU"); on a CPU, TensorFlow.
BACKEND   ?= $(if $(filter 1,$(GPU)),jax,tensorflow)

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(if $(filter 1,$(GPU)),gpu-$(BACKEND),cpu)
CUDA_jax        := jax[cuda12]>=0.4.30
CUDA_tensorflow := tensorflow[and-cuda]>=2.16,<2.22
CUDA_torch      := torch
export KERAS_BACKEND := $(BACKEND)
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

RUN_ARGS := --data $(DATA) --out $(OUT) --preset $(PRESET) --folds $(FOLDS) --folds-by $(FOLDS_BY) \
            --precision $(PRECISION) --verbose $(VERBOSE)
SEGMENTER_TRAIN  := $(PY) -m segmenter.train $(RUN_ARGS)
CLASSIFIER_TRAIN := $(PY) -m classifier.train $(RUN_ARGS) --backbone $(BACKBONE)
MOSAIC := $(if $(filter mosaic,$(FOLDS_BY)),$(OUT)/mosaic.csv)
# Every input checked in full before anything long starts (salt.check: train images, masks, CSVs, RLE,
# ids, every test image): a bad file stops the run in seconds with one `error:` line that names it.
CHECK_INPUTS := $(PY) -m salt.check $(DATA) --test $(TEST) --cache $(OUT)/cache

DEMO_DATA  := $(OUT)/demo/data
DEMO_OUT   := $(OUT)/demo
DEMO_FOLDS ?= 3

.PHONY: install data mosaic check-inputs demo train-classifier train-segmenter submit bench gpu-check test clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	# The reference SE-ResNeXt50 for the converter test; its dependencies (torchvision) are not needed.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps pretrainedmodels==0.7.4
ifeq ($(GPU),1)
	# The CUDA build of the $(BACKEND) backend.
	$(PY) -m pip install -q --disable-pip-version-check "$(CUDA_$(BACKEND))"
endif
	touch $@

data: $(STAMP)
	$(PY) -m salt.kaggle --zip $(DOWNLOAD) --data $(DATA)

# Neighbouring tiles found again by their edges: OUT/mosaic.csv (id,mosaic,row,col), for folds by mosaic.
mosaic: $(STAMP)
	$(PY) -m salt.mosaic --data $(DATA) --out $(OUT)

check-inputs: | $(STAMP)
	$(CHECK_INPUTS)

$(OUT)/mosaic.csv: | $(STAMP) check-inputs
	$(PY) -m salt.mosaic --data $(DATA) --out $(OUT)

$(OUT)/classifier/metrics.json: | $(STAMP) check-inputs $(MOSAIC)
	$(CLASSIFIER_TRAIN)

$(OUT)/segmenter/metrics.json: | $(STAMP) check-inputs $(MOSAIC)
	$(SEGMENTER_TRAIN)

train-classifier: $(STAMP) check-inputs $(MOSAIC)
	$(CLASSIFIER_TRAIN)

train-segmenter: $(STAMP) check-inputs $(MOSAIC)
	$(SEGMENTER_TRAIN)

# Make trains whatever model is missing, then predicts TEST, tunes on out-of-fold predictions,
# writes and validates the submission, and writes the report.
# The tile mosaic (seconds) lets the tuning try the rules that follow labelled neighbours.
submit: check-inputs $(OUT)/segmenter/metrics.json $(OUT)/classifier/metrics.json $(OUT)/mosaic.csv
	$(PY) -m segmenter.predict --out $(OUT) --images $(TEST) --name submit
	$(PY) -m classifier.predict --out $(OUT) --images $(TEST) --name submit
	$(PY) -m ensemble.tune --data $(DATA) --out $(OUT)
	$(PY) -m ensemble.submit --data $(DATA) --out $(OUT) --pred submit --images $(TEST)
	$(PY) -m ensemble.report --data $(DATA) --out $(OUT)

# The whole pipeline on the built-in synthetic data set, with the smoke preset.
demo: $(STAMP)
	test -f $(DEMO_DATA)/train.csv || $(PY) -m salt.synthetic $(DEMO_DATA) --train 200 --test 50
	$(MAKE) --no-print-directory submit DATA=$(DEMO_DATA) OUT=$(DEMO_OUT) PRESET=smoke FOLDS=$(DEMO_FOLDS) TEST=$(DEMO_DATA)/test/images
	@echo "demo done: submission $(DEMO_OUT)/submission.csv, report $(DEMO_OUT)/report.html"

bench: $(STAMP)
	$(PY) -m bench.run --out $(OUT)/bench

# On a machine with a GPU and the project installed: installs nothing, trains fold 0 of the full preset
# scaled to a few minutes and prints one table (python3 -m bench.gpu_check where there is no .venv).
gpu-check:
	$(PY) -m bench.gpu_check --data $(DATA) --out $(OUT)/gpu-check

test: $(STAMP)
	$(PY) -m pytest tests -q -n auto --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(OUT)
