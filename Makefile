# Dialtone: `make run` serves the example flow on 127.0.0.1:5080; `make test` runs every test.
# Both create .venv and install what they need (on a fresh Debian/Ubuntu machine as root,
# `make test` also installs the Debian tools the tests talk to).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.installed-serve

SIP    ?= 127.0.0.1:5080
FLOW   ?= ivr_flows/examples/contact_centre/flow.yaml
EVENTS ?= var/events.jsonl

.PHONY: install install-serve venv run test test-fast system-deps serve-deps fixtures bench lint clean

# what serving needs (make run): the package and its speech engines, nothing test-only
install-serve: $(SERVE_STAMP)

# what the tests need too
install: $(STAMP)

venv: $(PY)

$(PY):
	@$(PYTHON) -m venv $(VENV) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
	  && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); } \
	  || { echo "make: python3-venv is missing: sudo apt-get install python3-venv" >&2; exit 1; }
	$(PY) -m pip install -q --upgrade pip

$(SERVE_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[speech]'
	@touch $(SERVE_STAMP)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,speech,dev]'
	@touch $(STAMP) $(SERVE_STAMP)

run: install-serve serve-deps
	@mkdir -p var
	$(VENV)/bin/dialtone serve --sip $(SIP) --flow $(FLOW) --events $(EVENTS) --http 127.0.0.1:8080

serve-deps:
	@bash scripts/system-deps.sh serve

system-deps:
	@bash scripts/system-deps.sh test

fixtures: install
	$(PY) audio_fixtures/make_fixtures.py

test: install system-deps
	$(PY) audio_fixtures/make_fixtures.py --quiet
	@# the unit tier (no I/O, CPU-bound) on both cores; the tiers that time real peers alone
	@rc=0; $(PY) -m pytest -q -p no:cacheprovider -n 2 tests/unit || rc=$$?; \
	  $(PY) -m pytest -q -p no:cacheprovider tests/layer tests/interop tests/browser || rc=$$?; \
	  exit $$rc

test-fast: install
	$(PY) -m pytest -q -m "not interop and not slow"

bench: install
	$(PY) benchmarks/run_all.py

lint: install
	$(VENV)/bin/ruff check dialtone dialtone_errors telephony ivr_flows dialer routing tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache
