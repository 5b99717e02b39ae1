# dermxai: two commands on a fresh machine -- `make tour` and `make test` -- both install into .venv when needed.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the machine's pip configuration lists local mirrors that may be absent; their warnings are noise
PIPQUIET := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: install tour lab teach test test-nbs test-py lint check-export readme docs bench clean chromium

# (re)install when the venv is missing or the package definition changed
$(STAMP): setup.py settings.ini pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing dermxai and its dependencies into $(VENV) (torch + torchvision as a matched pair; a few minutes the first time)"
	$(BIN)/python -m pip install -q --progress-bar off -e ".[dev]" 2>&1 | $(PIPQUIET)
	@# Quantus 0.6 checks our localisation metrics in the tests; without its dependencies, which would add
	@# opencv-python beside opencv-python-headless (two packages writing one cv2): its other needs are installed above
	$(BIN)/python -m pip install -q --progress-bar off --no-deps "quantus==0.6.0" "cachetools>=5" 2>&1 | $(PIPQUIET)
	$(BIN)/python -c "import quantus, cv2"
	$(BIN)/python -c "import torch, torchvision; print('torch', torch.__version__, '/ torchvision', torchvision.__version__)"
	@touch $(STAMP)

install: $(STAMP)

tour: $(STAMP)
	$(BIN)/dermxai tour --out tour

# the two other ways in after a tour (the report is tour/report.html): the widgets in JupyterLab, the teaching app
lab: $(STAMP)
	$(BIN)/jupyter lab nbs/40_widgets.ipynb

teach: $(STAMP)
	$(BIN)/dermxai teach $(if $(wildcard tour/runs/gated/checklist.nc),--run tour/runs/gated)

test: $(STAMP) check-export lint test-nbs test-py

# notebooks and the generated package must agree (catalogue.json is generated from the registries and checked by
# tests/test_cli_startup.py): export into a fresh copy (never into the working tree, so a failing
# check cannot overwrite anything) and compare, stale modules of deleted notebooks included
check-export: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  cp -r nbs settings.ini "$$tmp"/ && mkdir "$$tmp"/dermxai && cp dermxai/__init__.py "$$tmp"/dermxai/ && \
	  (cd "$$tmp" && $(abspath $(BIN))/nbdev_export) && \
	  diff -r -q -x __pycache__ -x catalogue.json "$$tmp"/dermxai dermxai || { echo "dermxai/ is not what nbdev_export makes of nbs/: run nbdev_export and commit"; exit 1; }

# pyflakes' correctness checks (undefined and unused names) and syntax errors on the generated package
lint: $(STAMP)
	$(BIN)/ruff check dermxai tests bench

# every cell of every notebook (training in notebooks is sized to run here); two workers fill the two cores with one
# torch thread each (OpenMP threads that outnumber the cores spin; on a busy 2-core machine a ResNet-50 step took 8x
# longer with two threads than with one)
test-nbs: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  TMPDIR="$$tmp" OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2 --timing

test-py: $(STAMP) chromium
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  TMPDIR="$$tmp" $(BIN)/python -m pytest tests -q -ra --basetemp="$$tmp/pytest"

# the browser tests drive Debian's chromium through Playwright (never `playwright install`, which downloads a browser)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@test -x $(CHROMIUM) || { echo "Installing Debian chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium could not be installed: the browser tests will skip (and fail under CI=true)"

readme: $(STAMP)
	$(BIN)/python tools/readme.py

# the docs site: nbdev processes the notebooks (running the `#| exec_doc` cells, so every figure is static HTML) and
# Quarto renders _proc into _docs. Plotly figures carry HTML that loads plotly.js from its CDN (Quarto's advice).
DOCS_ENV := PLOTLY_RENDERER=plotly_mimetype+notebook_connected
docs: $(STAMP)
	@command -v quarto >/dev/null || { echo "Quarto is not installed (https://quarto.org/docs/get-started/): the GitHub Pages workflow renders the site"; exit 1; }
	$(DOCS_ENV) $(BIN)/nbdev_docs

bench: $(STAMP)
	for b in bench/[!_]*.py; do $(BIN)/python $$b; done

clean:
	rm -rf _proc _docs .pytest_cache tour
