# The two commands from the README:
#   make demo   set up everything, build the demo project from the bundled images and open the review UI
#   make test   set up everything the tests need (system packages included) and run the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RISE := $(VENV)/bin/rise
# Where the demo keeps its SQLite database and media; override with RISE_DATA_DIR=... make demo
export RISE_DATA_DIR ?= $(CURDIR)/data

.PHONY: demo test install install-dev system-deps lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch first, pinned: a bare "torch" requirement (peft has one) would pull a multi-GB CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e ".[postgres]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e ".[postgres,dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# PostgreSQL and Chromium come from Debian; the tests start their own throwaway servers from them.
system-deps:
	@bash scripts/system-deps.sh

demo: install
	$(RISE) init
	$(RISE) demo

# Label Studio pins old pytz/dateutil/pyarrow, so the round-trip tests start it from its own environment.
LS_VENV := .label-studio-venv
$(LS_VENV)/.installed: scripts/label-studio-venv.sh
	bash scripts/label-studio-venv.sh $(LS_VENV)

test: install-dev system-deps $(LS_VENV)/.installed
	$(PY) -m pytest -q

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(LS_VENV) data .pytest_cache
