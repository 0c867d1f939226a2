# Two commands on a fresh machine: `make demo` and `make test`; both create .venv and install on first use.
# python -m venv + pip on purpose: pip takes torch from this machine's local wheels (see CONVENTIONS.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: synthetic dataset -> train Nano from scratch on CPU -> predict -> export ONNX -> print the test mAP50
demo: $(STAMP)
	$(BIN)/python examples/make_synthetic_dataset.py $(DEMO_DIR)/data --num-images 80 --image-size 96 \
		--classes square circle --max-objects 2 --object-size 0.2 0.35
	$(BIN)/rfdetr-trainer run --config examples/demo.yaml --dataset-dir $(DEMO_DIR)/data \
		--output-dir $(DEMO_DIR)/runs --run-name demo
	$(BIN)/python examples/demo_report.py $(DEMO_DIR)/runs/demo/run_manifest.json

## test: the whole suite, including one real CPU training run
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=20

## bench: figures for the closing notes (not timed tests)
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_cli_startup.py
	$(BIN)/python benchmarks/bench_train_overhead.py

lint: $(STAMP)
	$(BIN)/python -m ruff check rfdetr_trainer tests

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
