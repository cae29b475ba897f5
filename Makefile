# Two commands on a fresh machine with Python >= 3.10 and pip:
#   make demo   the main job: SimCLR pretrained on the embedded digits dataset (no download) with
#               coded-smoothing on and off, evaluated, compared
#   make test   the linters, the type checker and the whole test suite (what CI runs)
# and, while working: make test-fast (the suite without the slow end-to-end tests), make lint.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned to the release this project is tested with (a local wheel where one exists)
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/ssl-coded pretrain --compare simclr-digits coded.enabled=true name=demo-$$(date +%Y%m%d-%H%M%S)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q --durations=25

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

bench: $(VENV)/.installed
	$(PY) -m benchmarks.bench_overhead

clean:
	rm -rf $(VENV) build *.egg-info
