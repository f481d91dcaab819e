# rnnmt — two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of this exact version lies in /opt/wheels here; override for CUDA, e.g. TORCH_SPEC="torch==2.5.1".
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install serve test lint test-deps browser-deps clean release-models docker-smoke test-image audit

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	echo "$(TORCH_SPEC)" > $(VENV)/constraints.txt
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/rnnmt serve --host $(HOST) --port $(PORT)

# Debian packages the tests use for real: chromium (browser test), redis-server (quotas shared by replicas) and
# trans-de-en (the Ding dictionary: its split rule is checked on the real file; `make release-models` trains on it).
# Installed only when missing (skipped without root/apt; the tests that need them then skip and say why).
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -q
test-deps:
	@for pkg in chromium:chromium redis-server:redis-server /usr/share/trans/de-en:trans-de-en; do cmd=$${pkg%%:*}; deb=$${pkg##*:}; \
	  { command -v $$cmd >/dev/null 2>&1 || [ -e "$$cmd" ]; } || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    { $(APT_INSTALL) $$deb >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && $(APT_INSTALL) $$deb >/dev/null; }; } || \
	    echo "test-deps: $$deb not installed; the tests that need it will be skipped"; }; done

browser-deps: test-deps

lint: install
	$(VENV)/bin/ruff check app model training tests

test: install test-deps lint
	$(VENV)/bin/pytest -q --durations=15

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The recipe of the shipped models: train (resuming if interrupted), evaluate, benchmark, export with cards.
release-models: install test-deps
	scripts/release-model.sh everyday-en-de
	scripts/release-model.sh everyday-de-en
	# The right-to-left models start from the released ones; then those are tuned again, reranked by them.
	scripts/release-model.sh everyday-en-de-r2l
	scripts/release-model.sh everyday-de-en-r2l
	scripts/release-model.sh everyday-en-de
	SHORTLIST_FREQUENT=1000 scripts/release-model.sh everyday-de-en
	# de->en, both models: one more stage with back-translated everyday English, released in their place.
	scripts/fortunes-bt.sh
	scripts/release-model.sh everyday-de-en-r2l-bt
	BEAMS=8,16 TUNE_ARGS="--length-penalties 0.6,1.0 --reverse-weights 1.5,2,2.5,3 --right-to-left-weights 1,1.5,2,3" \
	  SHORTLIST_FREQUENT=1000 scripts/release-model.sh everyday-de-en-bt
	scripts/release-model.sh en-fr
	scripts/release-model.sh fr-en
	scripts/release-model.sh en-cs
	scripts/release-model.sh cs-en

# Build the image and run it with podman (no Docker engine needed; minutes, root, apt): /health, then a POST
# /translate en->de, which needs an en->de model in released-models/. Not part of `make test`.
SMOKE ?= ../shared/tools/container-smoke.sh
docker-smoke:
	nice -n 19 bash $(SMOKE) $(CURDIR)

# Build the image and check it as production runs it (scripts/test-image.sh): healthy within the start period,
# non-root, read-only root filesystem, SIGTERM (podman stop) with a request in flight: it completes, exit 0 within
# the grace period; prints build time, image size, start-up time and RSS. Needs podman; not in CI. Run it when the
# Dockerfile or the dependencies change. Without a Docker engine or registry access, run scripts/podman-setup.sh
# once (podman + runc, containers.conf, a stand-in base image); it prints the CONTAINERS_CONF export and this line:
#   make test-image TEST_IMAGE_BUILD_OPTS="--pull=never -v /opt/wheels:/opt/wheels:ro --build-arg PIP_FIND_LINKS=/opt/wheels \
#     -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"
TEST_IMAGE_BUILD_OPTS ?=
test-image:
	BUILD_OPTS="$(TEST_IMAGE_BUILD_OPTS)" nice -n 19 bash scripts/test-image.sh

# Known vulnerabilities in the installed Python packages (pip-audit; needs the PyPI JSON API or api.osv.dev:
# AUDIT_SERVICE=osv). Exit 3 and says so when that database cannot be reached: nothing unaudited counts as clean.
audit: install
	VENV=$(VENV) bash scripts/audit.sh
