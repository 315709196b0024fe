# Two entry points, both self-installing on a machine with only Python 3.11:
#   make run   -> the front panel on the simulator (or a scripted run when there is no display)
#   make test  -> the full test suite, headless
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench screenshot clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(BIN)/ionto gui --sim; \
	else \
		echo "No display: running the scripted 30-minute protocol on the simulator (60x clock)."; \
		$(BIN)/ionto run --sim --speed 60 --output runs; \
	fi

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q
	$(BIN)/ruff check .

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/run_benchmarks.py

screenshot: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python docs/make_screenshot.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs
