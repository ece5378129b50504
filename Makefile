# nerf-ports: every target installs what it needs first (see `make help`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DATA_DIR ?=
SCENE ?=
GIN ?=
CONFIG ?=
ARGS ?=
NPROC ?= 1
SYNTH_DIR ?= data/synthetic
RUNS_DIR ?= runs

.PHONY: help install lock test test-slow demo data contact-sheets lint bench clean-venv

help:
	@echo "make demo          set up, make the embedded scene, train briefly, evaluate, render"
	@echo "make demo-mine     MINE: a few CPU minutes on the synthetic forward scene, videos of a photo"
	@echo "make test          the test suite (what CI runs)"
	@echo "make install       create $(VENV) and install the pinned dependencies of $(LOCK), then the project (editable)"
	@echo "make lock          regenerate $(LOCK) from pyproject.toml and its test extra (UPGRADE=1: newest releases)"
	@echo "make data          render the procedural scenes into $(SYNTH_DIR)/"
	@echo "make lint          ruff"
	@echo "make bench         throughput scripts under bench/ (rays/s)"
	@echo "make train-<pkg> | eval-<pkg> | render-<pkg>  SCENE= DATA_DIR= GIN= CONFIG= ARGS= NPROC="

install: $(STAMP)

# requirements.lock pins every runtime and test dependency with hashes (pip-compile from pyproject.toml
# and its test extra; `make lock` regenerates it, keeping its pins unless UPGRADE=1). torch is installed
# first at the lock's release: with CUDA, PyPI's (CUDA) build; without, the CPU build (+cpu: a wheel on
# this machine's find-links, else PyTorch's CPU index, else PyPI's, which is CPU-only off x86 Linux; its
# dependencies come from the lock); the rest of the lock follows without torch, then the project
# (editable, --no-deps). The stamp depends on the
# lock and pyproject.toml, so a second `make install` is a no-op until one of them changes.
LOCK := requirements.lock
TORCH_VERSION := $(firstword $(subst +, ,$(shell sed -n 's/^torch==\([^ ]*\).*/\1/p' $(LOCK))))
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if $(PY) -c "import torch" 2>/dev/null; then \
	  echo "torch already installed: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  $(PY) -m pip install -q torch==$(TORCH_VERSION); \
	else \
	  echo "no CUDA on this machine: installing the CPU build torch==$(TORCH_VERSION)+cpu"; \
	  $(PY) -m pip install -q --no-deps --no-index torch==$(TORCH_VERSION)+cpu 2>/dev/null \
	  || $(PY) -m pip install -q --no-deps torch==$(TORCH_VERSION)+cpu --index-url $(TORCH_CPU_INDEX) \
	  || $(PY) -m pip install -q --no-deps torch==$(TORCH_VERSION); \
	fi
	awk '/^[^ #]/ { skip = /^torch==/ } !skip' $(LOCK) > $(VENV)/requirements-without-torch.lock
	$(PY) -m pip install -q --require-hashes -r $(VENV)/requirements-without-torch.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m data_tools.check_install
	$(PY) -m data_tools.lpips_weights --if_missing --offline_ok
	@touch $(STAMP)

PIP_TOOLS ?= pip-tools==7.7.0
LOCK_TOOLS := $(VENV)/pip-tools
UPGRADE ?=
lock:
	@test -x $(LOCK_TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install -q $(PIP_TOOLS); }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile -q --extra test --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links \
	  $(if $(UPGRADE),--upgrade) --output-file $(LOCK) pyproject.toml

# gin's registry is global and the packages share selector names (`Config`, `MLP`), so each paper
# package's tests run in a process of their own; the shared tests and the golden cases in another.
# Every test runs on one intra-op thread (tests/conftest.py), so `make test` runs TEST_JOBS groups
# side by side (one per core), the longest first; each group's output is printed when it ends.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
TEST_GROUP_NAMES := mipnerf inerf mine mipnerf360 shared depth_mipnerf
test_paths_shared := tests/common tests/data_tools $(wildcard tests/test_*.py)
test_paths = $(if $(test_paths_$(1)),$(test_paths_$(1)),tests/$(1))

test: $(STAMP)
	@rm -f .pytest_cache/*/junit.xml
	@$(MAKE) --no-print-directory -k -j$(TEST_JOBS) --output-sync=target \
	  $(addprefix test-group-,$(TEST_GROUP_NAMES)); code=$$?; \
	$(PY) tests/durations.py 15 .pytest_cache/*/junit.xml; \
	[ $$code -eq 0 ] || { echo "make test: a group failed (see above)"; exit 1; }

define test_group
test-group-$(1): $(STAMP)
	@start=$$$$(date +%s); echo "== pytest $(call test_paths,$(1))"; \
	$(PY) -m pytest -q -m "not slow" -o cache_dir=.pytest_cache/$(1) --junitxml=.pytest_cache/$(1)/junit.xml \
	  $(call test_paths,$(1)); code=$$$$?; \
	echo "== $(1): $$$$(( $$$$(date +%s) - start )) s"; exit $$$$code
.PHONY: test-group-$(1)
endef
$(foreach g,$(TEST_GROUP_NAMES),$(eval $(call test_group,$(g))))

test-slow: $(STAMP)
	@status=0; for group in $(TEST_GROUP_NAMES); do \
	  case $$group in shared) paths="$(test_paths_shared)";; *) paths=tests/$$group;; esac; \
	  $(PY) -m pytest -q -m slow $$paths; code=$$?; [ $$code = 0 -o $$code = 5 ] || status=1; \
	done; exit $$status

lint: $(STAMP)
	$(VENV)/bin/ruff check .

data: $(STAMP)
	$(PY) -m data_tools.synth --scene object360 --out $(SYNTH_DIR)/object360 --overwrite
	$(PY) -m data_tools.synth --scene forward --out $(SYNTH_DIR)/forward --overwrite
	$(PY) -m data_tools.synth --scene unbounded360 --out $(SYNTH_DIR)/unbounded360 --overwrite

contact-sheets: data
	for s in object360 forward unbounded360; do \
	  $(PY) -m data_tools.contact_sheet $(SYNTH_DIR)/$$s --out data_tools/contact_sheets/$$s.png; done

DEMO_SCENE := $(SYNTH_DIR)/unbounded360
DEMO_GIN := mipnerf360/configs/demo.gin
demo: $(STAMP)
	$(PY) -m data_tools.synth --scene unbounded360 --out $(DEMO_SCENE) --overwrite
	$(MAKE) --no-print-directory train-mipnerf360 DATA_DIR=$(DEMO_SCENE) GIN=$(DEMO_GIN)
	$(MAKE) --no-print-directory eval-mipnerf360 DATA_DIR=$(DEMO_SCENE) GIN=$(DEMO_GIN)
	$(MAKE) --no-print-directory render-mipnerf360 DATA_DIR=$(DEMO_SCENE) GIN=$(DEMO_GIN)
	@$(PY) -m mipnerf360.scripts.demo_summary $(RUNS_DIR)/mipnerf360/unbounded360

bench: $(STAMP)
	@for f in bench/*.py; do [ -e "$$f" ] || continue; echo "== $$f"; $(PY) $$f || exit 1; done

# --- per-package train / eval / render --------------------------------------------------------
# gin packages (mipnerf360, mipnerf, depth_mipnerf): GIN= a config file, DATA_DIR= the scene folder.
GIN_PACKAGES := mipnerf360 depth_mipnerf
DATA_ROOT_mipnerf360 := data/360_v2
DATA_ROOT_depth_mipnerf := data/nerf_synthetic
GIN_DEFAULT_mipnerf360 := mipnerf360/configs/360.gin
GIN_DEFAULT_depth_mipnerf := depth_mipnerf/configs/blender.gin
scene_dir = $(if $(DATA_DIR),$(DATA_DIR),$(DATA_ROOT_$(1))/$(SCENE))
# mip-NeRF 360's protocol: the indoor scenes at factor 2, the outdoor ones at factor 4 (360.gin's value).
INDOOR_360 := room counter kitchen bonsai
extra_bindings_mipnerf360 = $(if $(filter $(INDOOR_360),$(SCENE)),--gin_bindings="Config.factor=2")
gin_flags = --gin_configs=$(if $(GIN),$(GIN),$(GIN_DEFAULT_$(1))) \
  --gin_bindings="Config.data_dir='$(call scene_dir,$(1))'" \
  --gin_bindings="Config.checkpoint_dir='$(RUNS_DIR)/$(1)/$(if $(SCENE),$(SCENE),$(notdir $(DATA_DIR)))'" \
  $(extra_bindings_$(1))
launch = $(if $(filter-out 1,$(NPROC)),$(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC),$(PY))

# depth_mipnerf's video module is render_video.
RENDER_MODULE_mipnerf360 := render
RENDER_MODULE_depth_mipnerf := render_video
render_bindings_mipnerf360 := --gin_bindings="Config.render_path=True"

define gin_targets
train-$(1): $(STAMP) ; @$(MAKE) --no-print-directory check-ported PKG=$(1) && $(call launch) -m $(1).train $(call gin_flags,$(1)) $(ARGS)
eval-$(1): $(STAMP) ; @$(MAKE) --no-print-directory check-ported PKG=$(1) && $(PY) -m $(1).eval $(call gin_flags,$(1)) $(ARGS)
render-$(1): $(STAMP) ; @$(MAKE) --no-print-directory check-ported PKG=$(1) && $(PY) -m $(1).$(RENDER_MODULE_$(1)) $(call gin_flags,$(1)) $(render_bindings_$(1)) $(ARGS)
.PHONY: train-$(1) eval-$(1) render-$(1)
endef
$(foreach p,$(GIN_PACKAGES),$(eval $(call gin_targets,$(p))))

# --- reproducing the papers' tables (README "Reproducing the papers") ----------------------------
# make reproduce-<pkg> [DATA_DIR=...] [SCENES=a,b] [DRY_RUN=1] [JOBS=k] [NPROC=n] [TABLE=...] [DATASET=...] [ARGS=...]
# -> results/<pkg>[_<table>].{md,json}; run folders under $(RUNS_DIR)/<pkg>/reproduce (resumable).
REPRODUCE_PACKAGES := mipnerf360 mipnerf depth_mipnerf mine inerf
JOBS ?= 1
SCENES ?=
DRY_RUN ?=
TABLE ?=
DATASET ?=
define reproduce_target
reproduce-$(1): $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=$(1)
	$(PY) -m $(1).scripts.reproduce --runs_dir $(RUNS_DIR)/$(1)/reproduce $(if $(DATA_DIR),--data_dir $(DATA_DIR)) \
	  $(if $(SCENES),--scenes $(SCENES)) $(if $(DRY_RUN),--dry_run) --jobs $(JOBS) --nproc $(NPROC) \
	  $(if $(TABLE),--table $(TABLE)) $(if $(DATASET),--dataset $(DATASET)) $(ARGS)
.PHONY: reproduce-$(1)
endef
$(foreach p,$(REPRODUCE_PACKAGES),$(eval $(call reproduce_target,$(p))))

# mipnerf: google/mipnerf's flags. MULTISCALE=1 reads the converted multi-scale scene
# (python -m mipnerf.scripts.convert_blender_data) and evaluates at 4 scales.
MULTISCALE ?=
MIP_DATA = $(if $(DATA_DIR),$(DATA_DIR),$(if $(MULTISCALE),data/nerf_synthetic_multiscale,data/nerf_synthetic)/$(SCENE))
MIP_GIN = $(if $(GIN),$(GIN),mipnerf/configs/$(if $(MULTISCALE),multiblender,blender).gin)
MIP_RUN = $(RUNS_DIR)/mipnerf/$(if $(SCENE),$(SCENE),$(notdir $(DATA_DIR)))
train-mipnerf: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=mipnerf
	$(call launch) -m mipnerf.train --gin_file=$(MIP_GIN) --data_dir=$(MIP_DATA) --train_dir=$(MIP_RUN) $(ARGS)
eval-mipnerf: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=mipnerf
	$(PY) -m mipnerf.eval --ckpt $(MIP_RUN) --data_path $(MIP_DATA) --out_dir $(MIP_RUN)/eval --scale $(if $(MULTISCALE),4,1) $(ARGS)
render-mipnerf: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=mipnerf
	$(PY) -m mipnerf.render_video --ckpt $(MIP_RUN) --data_path $(MIP_DATA) --out_dir $(MIP_RUN)/video --scale $(if $(MULTISCALE),4,1) $(ARGS)
.PHONY: train-mipnerf eval-mipnerf render-mipnerf

# mine: DATASET (llff, realestate10k, kitti_raw, flowers), CONFIG= extra JSON overrides.
DATASET ?= llff
train-mine: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=mine
	PYTHON=$(PY) bash mine/start_training.sh MASTER_ADDR=localhost MASTER_PORT=$${MASTER_PORT:-8888} N_NODES=1 \
	  GPUS_PER_NODE=$(NPROC) NODE_RANK=0 WORKSPACE=$(RUNS_DIR)/mine DATASET=$(DATASET) VERSION=$(if $(SCENE),$(SCENE),default) \
	  EXTRA_CONFIG='$(if $(CONFIG),$(CONFIG),$(if $(DATA_DIR),{"data.training_set_path": "$(DATA_DIR)"},{}))' $(ARGS)
eval-mine: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=mine
	$(PY) -m mine.eval $(ARGS)
render-mine: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=mine
	$(PY) -m mine.visualizations.image_to_video $(ARGS)
# A small MINE trained for a few CPU minutes on the synthetic forward scene, evaluated, and videos
# of scikit-image's astronaut photo.
demo-mine: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=mine
	$(PY) -m mine.scripts.demo --out $(RUNS_DIR)/mine/demo $(ARGS)

# inerf: GIN= the paper's NeRF trainer and pose protocol (inerf/configs/*.gin; DATA_DIR, SCENE become
# Config bindings), else CONFIG= a pixelNeRF .conf for the release's trainer (DataParallel over
# --gpu_id, not torchrun).
inerf_bindings = $(if $(DATA_DIR),--gin_bindings="Config.data_dir='$(DATA_DIR)'") $(if $(SCENE),--gin_bindings="Config.model_name='$(SCENE)'")
train-inerf: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=inerf
	$(if $(GIN),$(PY) -m inerf.train_nerf --gin_configs=$(GIN) $(inerf_bindings),$(PY) -m inerf.train.train $(if $(CONFIG),-c $(CONFIG))) $(ARGS)
eval-inerf: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=inerf
	$(PY) -m inerf.run $(if $(GIN),--gin_configs=$(GIN)) $(inerf_bindings) $(ARGS)
render-inerf: $(STAMP)
	@$(MAKE) --no-print-directory check-ported PKG=inerf
	$(PY) -m inerf.eval.gen_video $(ARGS)
.PHONY: train-mine eval-mine render-mine demo-mine train-inerf eval-inerf render-inerf check-ported

# The GPU acceptance run (bench/gpu_check.py) on a machine whose Python has torch with CUDA but not
# gin-config or pyhocon: wheels of both for its Python 3.12 into .whl/, and multinerf's tree (an
# unpacked google-research/multinerf, MULTINERF=) into .gpu_carry/ for the side-by-side JAX timing.
gpu-wheels: $(STAMP)
	mkdir -p .whl && $(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform any -d .whl gin-config==0.5.0 pyhocon==0.3.61
gpu-carry: gpu-wheels
	@test -d "$(MULTINERF)/internal" || { echo "error: MULTINERF= must name an unpacked google-research/multinerf"; exit 2; }
	rm -rf .gpu_carry && mkdir -p .gpu_carry && cp -r $(MULTINERF) .gpu_carry/multinerf
.PHONY: gpu-wheels gpu-carry

check-ported:
	@test -f $(PKG)/__init__.py || { echo "error: the $(PKG) package is not ported yet (see its issue: 'issues list')"; exit 2; }

clean-venv:
	rm -rf $(VENV)
