# rnnmt — two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of this exact version lies in /opt/wheels here; override for CUDA, e.g. TORCH_SPEC="torch==2.5.1".
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install serve test lint browser-deps clean release-models docker-smoke

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	echo "$(TORCH_SPEC)" > $(VENV)/constraints.txt
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/rnnmt serve --host $(HOST) --port $(PORT)

# Debian's chromium for the browser test; installed only when missing (skipped without root/apt).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; } || \
	  echo "browser-deps: chromium not installed; the browser test will be skipped"; }

lint: install
	$(VENV)/bin/ruff check app model training tests

test: install browser-deps lint
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The recipe of the shipped models: train (resuming if interrupted), evaluate, benchmark, export with cards.
release-models: install
	scripts/release-model.sh en-de
	scripts/release-model.sh de-en

# Build the image and run it with podman (no Docker engine needed; minutes, root, apt): /health, then a POST
# /translate en->de, which needs an en->de model in released-models/. Not part of `make test`.
SMOKE ?= ../shared/tools/container-smoke.sh
docker-smoke:
	nice -n 19 bash $(SMOKE) $(CURDIR)
