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
	$(PY) tools/model_info.py internvit-6b-224px

test: setup
	$(PY) -m pytest tests
