# Two set-up commands on a fresh machine: `make demo` and `make test`. Both create/refresh .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first and pinned: pip takes the local CPU build; an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

BOOK_STAMP := $(VENV)/.book-installed

.PHONY: venv demo test lint bench clean book chromium

# The venv, pip and the pinned torch: the first steps of both installs below. pip would compile every file it
# installs on one core; the installs skip that (--no-compile) and VENV_BYTECODE then compiles the venv's packages on
# every core: 57 s instead of 90 s for the test install here. Bytecode is needed: where PYTHONDONTWRITEBYTECODE is set,
# as on this project's machines, a package without it is compiled again by every process that imports it. Files that
# do not compile (Python 2 fixtures inside some packages) are skipped, as pip skips them, and so are the packages' own
# test suites, which nothing imports.
define VENV_BASE
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile "$(TORCH_PIN)"
endef
VENV_BYTECODE = $(BIN)/python -m compileall -q -j 0 -x '/tests?/|/testing/_internal/' \
	"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null 2>&1 || true

# The project's bytecode, compiled once on both cores: every process the suite or the book starts (page kernels, CLI
# subprocesses, sweep workers) then reads it, instead of compiling the sources again in each process, as Python does
# where PYTHONDONTWRITEBYTECODE is set (this project's machines set it). The .pyc files are git-ignored.
BYTECODE = $(BIN)/python -m compileall -q -j 0 theory numerics verify >/dev/null

$(STAMP): pyproject.toml Makefile
	$(VENV_BASE)
	$(BIN)/python -m pip install -q --no-compile -e ".[dev]"
	$(VENV_BYTECODE)
	touch $(STAMP)

venv: $(STAMP)

# The book extra (Jupyter Book 1.x, ipykernel) with the dev install, and the extras that make test and the book's
# "Your own run" page exercise: the Hugging Face and Lightning adapters and Parquet export. `make demo` needs none of
# them. One install (not the dev install first, then this one): it is a superset, so it also stamps the dev install.
$(BOOK_STAMP): pyproject.toml Makefile
	$(VENV_BASE)
	$(BIN)/python -m pip install -q --no-compile -e ".[dev,book,hf,lightning,parquet,digits]"
	$(VENV_BYTECODE)
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
