# poolwise: `make run` starts the app, `make test` installs everything and runs all checks.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python

.PHONY: run test lint setup-app setup-test clean

setup-app:
	bash scripts/setup.sh app

setup-test:
	bash scripts/setup.sh test

# This machine only by default (as `poolwise app`); `make run ADDRESS=0.0.0.0` serves a team.
ADDRESS ?= $(or $(STREAMLIT_SERVER_ADDRESS),127.0.0.1)
PORT    ?= $(or $(STREAMLIT_SERVER_PORT),8501)

run: setup-app
	$(VENV)/bin/streamlit run app.py --server.headless true --browser.gatherUsageStats false \
		--server.address $(ADDRESS) --server.port $(PORT)

lint: setup-test
	$(VENV)/bin/ruff check .

test: setup-test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis tests/artifacts
