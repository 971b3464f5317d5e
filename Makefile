# poolwise: `make run` starts the app, `make test` installs everything and runs all checks.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python

.PHONY: run test lint setup-app setup-test clean

setup-app:
	bash scripts/setup.sh app

setup-test:
	bash scripts/setup.sh test

run: setup-app
	$(VENV)/bin/streamlit run app.py --server.headless true --browser.gatherUsageStats false

lint: setup-test
	$(VENV)/bin/ruff check .

test: setup-test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis tests/artifacts
