# The README's commands. Each target creates the virtual environment first, so a
# fresh clone needs nothing but Python 3.10+ and `make`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Quiet TensorFlow's C++ start-up banners; Python warnings still show.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv test demo lint bench clean

venv: $(STAMP)

# Re-runs only when setup.py changes (or the venv is missing).
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

test: venv
	$(PY) -m pytest -q

demo: venv
	$(PY) -m common.demo

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	@echo "no benchmarks yet"

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
