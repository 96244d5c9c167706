# The README's two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APT_PACKAGES := chromium postfix dovecot-imapd
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench system-packages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime dependencies (make run) and test tools (make test), each reinstalled when
# pyproject.toml changes.
$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml $(VENV)/.run-deps $(VENV)/axe/node_modules/axe-core/axe.min.js
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# axe-core (Deque's accessibility rules, from the npm registry) for the browser tests,
# kept inside the virtual environment: no package.json in the project.
$(VENV)/axe/node_modules/axe-core/axe.min.js: | $(BIN)/python
	npm install --silent --no-audit --no-fund --prefix $(VENV)/axe axe-core@4

# Debian's Chromium (browser tests), Postfix's smtp-sink (benchmarks) and Dovecot (a real
# IMAP mailbox for the bounce-fetch tests), when missing. Postfix is installed with "No
# configuration" and Dovecot's service is never started: tests run their own, on 127.0.0.1.
system-packages:
	@if ! command -v chromium >/dev/null 2>&1 || ! [ -x /usr/sbin/smtp-sink ] || ! [ -x /usr/sbin/dovecot ]; then \
	  echo "Installing $(APT_PACKAGES) from Debian"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | $(SUDO) debconf-set-selections; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

run: $(VENV)/.run-deps
	$(BIN)/mailer init --demo
	$(BIN)/mailer orgs list --kind lep
	$(BIN)/mailer audience show bulletin
	$(BIN)/mailer audience show newsletter
	$(BIN)/mailer issue list
	$(BIN)/mailer issue preview 1
	$(BIN)/mailer calendar --year $$(($$(date +%Y) + 1))
	@echo
	@echo "The demo database is ready (var/mailer.db); in another terminal try:"
	@echo "  $(BIN)/mailer issue show 1             # the demo bulletin, with lint results"
	@echo "  $(BIN)/mailer issue preview 1 --png    # HTML, text, .eml and 600/375 px screenshots"
	@echo "  $(BIN)/mailer calendar --year 2027     # 22 bulletins; plan newsletters: calendar plan"
	@echo "  $(BIN)/mailer issue approve 1 && $(BIN)/mailer send 1   # captured under var/mail"
	@echo "  $(BIN)/mailer bounces serve            # bounce endpoint on 127.0.0.1:2525; bounces list"
	@echo "  $(BIN)/mailer subject export ADDRESS   # everything held about a reader; subject erase"
	@echo "  $(BIN)/mailer audit                    # who did what, when"
	@echo "  $(BIN)/mailer --help"
	@echo
	@echo "Starting the site and the daemon (Ctrl-C to stop). Open http://127.0.0.1:8000/"
	@echo "Staff console: http://127.0.0.1:8000/staff"
	@echo "  editor@lepnetwork.example / demo-editor-password"
	@echo "  approver@lepnetwork.example / demo-approver-password"
	$(BIN)/mailer serve

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Bytecode first: where PYTHONDONTWRITEBYTECODE is set (as on CI) Python never caches it,
# and every `mailer` process a test starts would compile the whole package again.
test: $(VENV)/.test-deps system-packages lint
	$(BIN)/python -m compileall -q mailer tests > /dev/null
	$(BIN)/pytest

# Issue 20's table: each figure with its target, PASS/FAIL and its baseline of the same run.
bench: $(VENV)/.test-deps system-packages
	$(BIN)/python bench/table.py
	$(BIN)/python bench/bounces.py
	$(BIN)/python bench/login.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
