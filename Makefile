# The README's commands. Each target creates the virtual environment first, so a
# fresh clone needs nothing but Python 3.10+ and `make`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The command lines hide TensorFlow's C++ log lines themselves (`--tf-logs`
# shows them); the test process quiets its own.

.PHONY: venv test demo lint bench clean

venv: $(STAMP)

# Re-runs only when setup.py changes (or the venv is missing).
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	touch $(STAMP)

test: venv
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q --durations=25

# The demos: retrieval (generate data, train, evaluate, export, index, search,
# explain), then video (generate clips, train, evaluate, export, predict).
DEMO_RUN := runs/retrieval-demo
VIDEO_RUN := runs/video-demo
demo: venv
	rm -rf $(DEMO_RUN)
	$(PY) -m retrieval train --preset demo --output $(DEMO_RUN)
	$(PY) -m retrieval evaluate --run $(DEMO_RUN)
	$(PY) -m retrieval export --run $(DEMO_RUN) --output saved_models/retrieval --keep 3
	$(PY) -m retrieval index --model saved_models/retrieval \
		--images $(DEMO_RUN)/data/Images --pattern 'test_*.jpg' \
		--output saved_models/retrieval_index --keep 3
	$(PY) -m retrieval search --index saved_models/retrieval_index \
		"a large red circle at the top left" -k 5 --html $(DEMO_RUN)/search.html
	$(PY) -m retrieval explain --run $(DEMO_RUN) --image $(DEMO_RUN)/data/Images/test_00000.jpg \
		--text "$$(sed -n 2p $(DEMO_RUN)/data/captions.txt | cut -d, -f2)"
	rm -rf $(VIDEO_RUN)
	$(PY) -m video_understanding train --preset demo --output $(VIDEO_RUN)
	$(PY) -m video_understanding evaluate --run $(VIDEO_RUN)
	$(PY) -m video_understanding export --run $(VIDEO_RUN) \
		--output saved_models/video_understanding --keep 3
	$(PY) -m video_understanding predict --model saved_models/video_understanding -k 3 \
		$(VIDEO_RUN)/clips/up_high/up_high_0070.mp4 $(VIDEO_RUN)/clips/left_low/left_low_0085.mp4
	@echo ""
	@echo "Demo outputs:"
	@echo "  search results page:    $(DEMO_RUN)/search.html (open it in a browser)"
	@echo "  word-region attention:  $(DEMO_RUN)/explain.png"
	@echo "  video confusion matrix: $(VIDEO_RUN)/confusion_matrix.png"
	@echo "  run folders:            $(DEMO_RUN)/ and $(VIDEO_RUN)/ (config, checkpoints, metrics.json, logs)"
	@echo "  SavedModels:            saved_models/retrieval, saved_models/retrieval_index,"
	@echo "                          saved_models/video_understanding (python -m common.serving --help)"
	@echo "  the web page:           $(PY) -m common.web --index saved_models/retrieval_index \\"
	@echo "                              --model saved_models/video_understanding   (http://127.0.0.1:8080/)"

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# All benchmarks (< 20 min on 2 CPU cores) -> bench/results/latest.json + PNGs.
bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
