# Two entry points do all the set-up on a fresh machine (see README):
#   make demo   set up, then run the main job on the embedded default
#   make test   set up, then run the test suite
#   make demo-det  the detection demo (after, or including, the segmentation one)
#   make demo-adapter  adapter tuning: ViT-Adapter + UperNet on the segmentation
#                  demo's frozen backbone (after, or including, the segmentation demo)
#   make demo-sweep  probing sweep: 12 linear heads on one frozen forward, the head
#                  selected on held-out photographs; prints the table, writes the plots
#   make demo-depth  monocular depth: a tiny InternViT + linear bins head on a real
#                  RGB-D frame; RMSE before and after, predicted vs true depth PNGs
#   make lint   ruff (lint + import order) over the tree; .ci/run runs it before the tests
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup demo demo-det demo-adapter demo-sweep demo-depth test lint
setup:
	bash tools/misc/setup_env.sh

demo: setup
	PY=$(PY) bash tools/misc/run_demo.sh

demo-det: setup
	PY=$(PY) bash tools/misc/run_demo.sh det

demo-adapter: setup
	PY=$(PY) bash tools/misc/run_demo.sh adapter

demo-sweep: setup
	PY=$(PY) bash tools/misc/run_demo.sh sweep

demo-depth: setup
	PY=$(PY) bash tools/misc/run_demo.sh depth

test: setup
	$(PY) -m pytest tests

lint: setup
	$(VENV)/bin/ruff check .
