# Two commands on a fresh machine with Python >= 3.10 and pip:
#   make demo   the main job: SimCLR pretrained on the embedded digits dataset (no download) with
#               coded-smoothing on and off, evaluated, compared
#   make test   the test suite and the linter
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned to the release this project is tested with (a local wheel where one exists)
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/ssl-coded pretrain --compare simclr-digits coded.enabled=true name=demo-$$(date +%Y%m%d-%H%M%S)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m benchmarks.bench_overhead

clean:
	rm -rf $(VENV) build *.egg-info
