# The two Quickstart commands (`make demo`, `make test`) install what they need first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# torch is pinned: the CPU build is served from a local wheel; an unpinned torch pulls CUDA.
TORCH ?= torch==2.13.0
EXTRAS ?= test

.PHONY: install demo test bench gpu-check zoo

install:
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[$(EXTRAS)]"

demo: install
	$(PYTHON) tools/demo.py

test: install
	$(PYTHON) -m pytest -q tests

# The CPU benchmark of docs/benchmarks.md and README.md: run it on a quiet machine (nothing else
# running: check /proc/loadavg), then the tables are rendered from its JSON.
BENCH_JSON ?= docs/bench/cpu_2threads.json
bench:
	$(PYTHON) tools/benchmark.py --cfg configs/kinetics400/timesformer_base.yaml \
	    --cfg configs/kinetics600/xvit_b16_16.yaml --saving 0.4 --batch-sizes 1 8 --threads 2 \
	    --train --memory --json $(BENCH_JSON)
	$(PYTHON) tools/render_benchmarks.py --json $(BENCH_JSON)

# On a CUDA machine: the GPU checks and benchmark (docs/bench/gpu_check.json, at most ~8 min);
# without CUDA, the CPU half only.
gpu-check:
	$(PYTHON) tools/gpu_check.py
# The model zoo from nothing: the synthetic benchmark, tiny TimeSformer and tiny XViT for seeds 0, 1, 2,
# zoo/*.pt and zoo/manifest.json (docs/zoo.md; about 75 minutes on 2 cores, two runs at a time).
zoo: install
	$(PYTHON) experiments/zoo.py
