# Two commands do all of the set-up on a fresh machine:
#   make demo   execute the flagship lesson into an offline HTML report
#   make test   run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.labkit-setup-done
PYTEST_ARGS ?=

.PHONY: demo test lint setup clean bench

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/labkit run notebooks/01_tokenization.ipynb -o gallery

test: $(STAMP)
	@bash scripts/install-browser.sh || echo "make test: no Chromium here; the browser tests will be skipped"
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/labkit bench --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache gallery/*.html
