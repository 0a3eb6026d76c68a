# The README's two commands: `make demo` (main job on the bundled sample) and `make test` (whole suite).
# Both create .venv when missing and install the system packages napari needs when they can.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
MEDSEG := $(VENV)/bin/medseg
STAMP := $(VENV)/.medseg-installed
# torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
DATA := data

.PHONY: demo test setup system-deps clean-data

setup: system-deps $(STAMP)

system-deps:
	@scripts/install_system_deps.sh

$(STAMP): pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet "$(TORCH_PIN)"
	$(PYTHON) -m pip install --quiet -e ".[napari,dev]" "$(TORCH_PIN)"
	@touch $(STAMP)

demo: setup
	$(MEDSEG) sample datasets/brain-tissue.yaml --out $(DATA)/brain-tissue
	$(MEDSEG) sample datasets/ct-phantom.yaml --out $(DATA)/ct-phantom
	$(MEDSEG) info $(DATA)/brain-tissue/dicom
	$(MEDSEG) info $(DATA)/ct-phantom/imagesTr
	$(MEDSEG) demo --out demo-output --data $(DATA) --pretrained models/brain-tissue-unet

test: setup
	$(PYTHON) -m pytest -q

clean-data:
	rm -rf $(DATA)
