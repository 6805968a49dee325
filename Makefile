# Fresh-machine entry points (see README): `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DATA := demo_data
DEMO_DIR := work_dirs/demo
SWEEP_DIR := work_dirs/demo_sweep

.PHONY: venv demo test bench gpu-check clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# Jittor's C++ core, compiled once here with its process pool (segnext_jt imports compile serially)
	DISABLE_MULTIPROCESSING=0 $(PY) -c "import segnext_jt.runtime"
	touch $@

venv: $(VENV)/.installed

# A short real run on CPU: build the MNIST-derived demo data, train, evaluate (single scale and
# ms+flip), then a 3-seed sweep (each seed evaluated under 2 NMF seeds, single scale) with its report.
demo: venv
	$(PY) tools/prepare_demo_data.py --out $(DEMO_DATA)
	$(PY) tools/train.py configs/demo_mnist.yaml --work-dir $(DEMO_DIR) --seed 0
	$(PY) tools/eval.py configs/demo_mnist.yaml $(DEMO_DIR)/iter_500.npz --json $(DEMO_DIR)/eval_ss.json
	$(PY) tools/eval.py configs/demo_mnist.yaml $(DEMO_DIR)/iter_500.npz --ms-flip --json $(DEMO_DIR)/eval_msflip.json
	$(PY) repro/seed_sweep.py --config configs/demo_mnist.yaml --seeds 0..2 --eval-seeds 0..1 --no-msflip --work-dir $(SWEEP_DIR)
	$(PY) repro/report.py $(SWEEP_DIR)
	@echo "report: $(SWEEP_DIR)/report.md"

test: venv
	$(PY) -m pytest -q tests

bench: venv
	$(PY) tools/benchmark.py configs/segnext_t.yaml --synthetic

# On a CUDA machine: import, parity, T training step at batch 16, T/L fps, ms+flip CPU vs CUDA.
gpu-check: venv
	$(PY) tools/gpu_check.py

clean:
	rm -rf $(VENV) $(DEMO_DATA) work_dirs
