# Two set-up commands on a fresh machine: `make demo` and `make test`. Both create/refresh .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first and pinned: pip takes the local CPU build; an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

BOOK_STAMP := $(VENV)/.book-installed

.PHONY: venv demo test lint bench clean book chromium

# The venv, pip and the pinned torch: the first steps of both installs below. (Not `pip --no-compile`: it halves the
# install here, but where PYTHONDONTWRITEBYTECODE is set, as on this project's machines, every process then compiles
# everything it imports again; the book's build took 60 % more CPU.)
define VENV_BASE
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
endef

# The project's bytecode, compiled once on both cores: every process the suite or the book starts (page kernels, CLI
# subprocesses, sweep workers) then reads it, instead of compiling the sources again in each process, as Python does
# where PYTHONDONTWRITEBYTECODE is set (this project's machines set it). The .pyc files are git-ignored.
BYTECODE = $(BIN)/python -m compileall -q -j 0 theory numerics verify >/dev/null

$(STAMP): pyproject.toml Makefile
	$(VENV_BASE)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# The book extra (Jupyter Book 1.x, ipykernel) with the dev install, and the extras that make test and the book's
# "Your own run" page exercise: the Hugging Face and Lightning adapters and Parquet export. `make demo` needs none of
# them. One install (not the dev install first, then this one): it is a superset, so it also stamps the dev install.
$(BOOK_STAMP): pyproject.toml Makefile
	$(VENV_BASE)
	$(BIN)/python -m pip install -q -e ".[dev,book,hf,lightning,parquet,digits]"
	touch $(STAMP) $(BOOK_STAMP)

# Debian's headless Chromium for tests/test_book.py (math rendered, screenshots); installed only when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ apt-get update -q && apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; }

# The executable book: every page executed, warnings are errors; HTML in book/_build/html (works offline).
book: $(BOOK_STAMP)
	$(BYTECODE)
	OMP_NUM_THREADS=1 $(BIN)/jb build book -W --keep-going

demo: $(STAMP)
	$(BIN)/spectral-edge demo --out out/demo

# The suite includes tests/test_book.py, which builds the book and opens its pages in headless Chromium.
test: $(BOOK_STAMP) chromium
	$(BIN)/ruff check theory numerics verify tests benchmarks
	$(BYTECODE)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf out book/_build .pytest_cache .hypothesis
