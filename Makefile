# make run: set up (virtual environment, dependencies, index) and start the chat.
# make test: set up and run the whole test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: run test index lint bench-quick clean-index

run: $(VENV)/.runtime
	$(PY) -m qa index
	$(PY) app.py

index: $(VENV)/.runtime
	$(PY) -m qa index

test: $(VENV)/.dev chromium
	$(PY) -m ruff check qa tests bench app.py
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(PY) -m ruff check qa tests bench app.py

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

# The browser tests drive Debian's chromium (Playwright's own browser download cannot work offline).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

clean-index:
	rm -rf index/index.sqlite* index/vectors-*.faiss* index/.lock
