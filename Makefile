# The two commands of the README: `make demo` (the pipeline on the offline default) and `make test`.
# Each creates the local environment (.venv) on first use; only python3 is needed (without a C compiler, the
# environment gets zig's from PyPI: compare compiles its passes).

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
REQS := envs/requirements-local.txt envs/requirements-dev.txt envs/requirements-nodeps.txt
CORES ?= 2
# Test files run on this many processes (pytest-xdist), each file whole on one (its module fixtures build a workflow
# once; test_slurm.py holds the cluster, test_cpp_lib.py its build folders). 2 fits the 2-core, 24 GiB CI machine:
# the suite took 945 s there, against 1,726 s on one (2026-12-05). TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadfile
BENCH_SAMPLES ?= 10000

.PHONY: demo test test-fast lint venv system-deps clean bench-scale

$(VENV)/.installed: $(REQS) envs/requirements-compiler.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r envs/requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -r envs/requirements-nodeps.txt
	@# compare compiles its passes with cc; a machine without one gets zig's, from PyPI (no root needed)
	command -v "$${CC%% *}" >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 \
	  || $(BIN)/python -m pip install -q -r envs/requirements-compiler.txt
	$(BIN)/python tools/trt_stubs.py build/mypy-stubs
	touch $@

venv: $(VENV)/.installed

# The report is printed even when the gate fails the run (exit status kept), then the gate's message again, last.
# Only a current report is printed: the run succeeded, or the gate ran in this run (it runs after the report).
demo: venv
	@start=$$(mktemp); status=0; \
	snakemake --cores $(CORES) || status=$$?; \
	gated=0; [ results/logs/gate/gate.log -nt $$start ] && gated=1; rm -f $$start; \
	if [ $$status -eq 0 ] || [ $$gated -eq 1 ]; then cat results/report.txt; fi; \
	if [ $$status -ne 0 ] && [ $$gated -eq 1 ]; then cat results/logs/gate/gate.log >&2; fi; \
	if [ $$status -ne 0 ]; then echo "make demo: the pipeline failed (exit status $$status)" >&2; fi; \
	exit $$status

system-deps:
	bash tools/system-deps.sh

lint: venv
	python tools/trt_stubs.py build/mypy-stubs
	python tools/envs.py --check
	snakemake --lint
	snakefmt --check Snakefile rules/
	ruff check scripts tests tools
	mypy

test: venv system-deps
	python -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: venv
	python -m pytest -m "not gpu and not slow and not cluster and not browser" $(XDIST) $(PYTEST_ARGS)

# ResNet50 224x224 through the CPU steps, each against its bare library loop (docs/benchmarks.md, "At scale").
bench-scale: venv
	python tools/bench_scale.py --samples $(BENCH_SAMPLES)

clean:
	rm -rf results .snakemake
