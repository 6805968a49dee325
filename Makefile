# Fresh-machine entry points (see README): `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DATA := demo_data
DEMO_DIR := work_dirs/demo
SWEEP_DIR := work_dirs/demo_sweep

.PHONY: venv demo test bench gpu-check example-report clean

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
	$(PY) tools/check_demo_result.py $(DEMO_DIR)
	$(PY) tools/eval.py configs/demo_mnist.yaml $(DEMO_DIR)/iter_500.npz --json $(DEMO_DIR)/eval_ss.json
	$(PY) tools/eval.py configs/demo_mnist.yaml $(DEMO_DIR)/iter_500.npz --ms-flip --json $(DEMO_DIR)/eval_msflip.json
	$(PY) repro/seed_sweep.py --config configs/demo_mnist.yaml --seeds 0..2 --eval-seeds 0..1 --no-msflip --work-dir $(SWEEP_DIR)
	$(PY) repro/report.py $(SWEEP_DIR)
	@echo "report: $(SWEEP_DIR)/report.md"

# docs/example_report/: a demo sweep of 5 training seeds x 4 NMF eval seeds (ss and ms+flip), its report,
# and the three eval protocols (1 draw, K-draw means, frozen bases) on the same 5 checkpoints (~25 min on 2 cores)
EXAMPLE_SWEEP := work_dirs/example_sweep
example-report: venv
	$(PY) tools/prepare_demo_data.py --out $(DEMO_DATA)
	$(PY) repro/seed_sweep.py --config configs/demo_mnist.yaml --seeds 0..4 --eval-seeds 0..3 --work-dir $(EXAMPLE_SWEEP)
	$(PY) repro/report.py $(EXAMPLE_SWEEP) --out docs/example_report
	$(PY) repro/eval_noise.py --config configs/demo_mnist.yaml --eval-seeds 0..3 --draws 1,2,4,8 --frozen \
		--checkpoints $(foreach s,0 1 2 3 4,$(EXAMPLE_SWEEP)/seed_$(s)/iter_500.npz) --out docs/example_report/eval_noise

test: venv
	$(PY) -m pytest -q tests

bench: venv
	$(PY) tools/benchmark.py configs/segnext_t.yaml --synthetic

# On a CUDA machine: import, parity, T training step at batch 16, T/L fps, ms+flip CPU vs CUDA.
gpu-check: venv
	$(PY) tools/gpu_check.py

clean:
	rm -rf $(VENV) $(DEMO_DATA) work_dirs
