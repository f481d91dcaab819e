# rnnmt — two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of this exact version lies in /opt/wheels here; override for CUDA, e.g. TORCH_SPEC="torch==2.5.1".
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install serve test lint test-deps browser-deps clean release-models docker-smoke

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	echo "$(TORCH_SPEC)" > $(VENV)/constraints.txt
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/rnnmt serve --host $(HOST) --port $(PORT)

# Debian packages the tests start for real: chromium (browser test) and redis-server (quotas shared by replicas).
# Installed only when missing (skipped without root/apt; the tests that need them then skip and say why).
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -q
test-deps:
	@for pkg in chromium:chromium redis-server:redis-server; do cmd=$${pkg%%:*}; deb=$${pkg##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    { $(APT_INSTALL) $$deb >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && $(APT_INSTALL) $$deb >/dev/null; }; } || \
	    echo "test-deps: $$deb not installed; the tests that need it will be skipped"; }; done

browser-deps: test-deps

lint: install
	$(VENV)/bin/ruff check app model training tests

test: install test-deps lint
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The recipe of the shipped models: train (resuming if interrupted), evaluate, benchmark, export with cards.
release-models: install
	scripts/release-model.sh en-de
	scripts/release-model.sh de-en
	scripts/release-model.sh en-fr
	scripts/release-model.sh fr-en
	scripts/release-model.sh en-cs
	scripts/release-model.sh cs-en

# Build the image and run it with podman (no Docker engine needed; minutes, root, apt): /health, then a POST
# /translate en->de, which needs an en->de model in released-models/. Not part of `make test`.
SMOKE ?= ../shared/tools/container-smoke.sh
docker-smoke:
	nice -n 19 bash $(SMOKE) $(CURDIR)
