# Two entry points do all the set-up on a fresh machine (see README):
#   make demo   set up, then run the main job on the embedded default
#   make test   set up, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup demo test
setup:
	bash tools/setup_env.sh

demo: setup
	PY=$(PY) bash tools/run_demo.sh

test: setup
	$(PY) -m pytest tests
