# The two Quickstart commands (`make demo`, `make test`) install what they need first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# torch is pinned: the CPU build is served from a local wheel; an unpinned torch pulls CUDA.
TORCH ?= torch==2.13.0
EXTRAS ?= test

.PHONY: install demo test

install:
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[$(EXTRAS)]"

demo: install
	$(PYTHON) tools/demo.py

test: install
	$(PYTHON) -m pytest -q tests
