# nil: two commands. `make demo` runs the main job, `make test` runs every gate.
# Both create or reuse .venv, install what is missing (pip reuses what is there and its cache),
# and build the extension in release mode.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nil-deps
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
# The Ray tests start a local Ray instance (~35 s); CI runs them.
export NIL_TEST_RAY ?= 1

.PHONY: demo test test-random build venv rust-test stubtest pytest lint fmt bench clean

# The main job: a small CPU sweep at two budgets (teacher-student MLP, 6 depths x 2 seeds, with
# capture), then the efficient-interval fit on its runs table, its correlations shown for three
# summary metrics (every metric: drop --metrics), ending with a sentence and the figure to open.
# Re-running resumes finished runs.
DEMO_OUT ?= demo-sweep
demo: build
	$(PY) -m nil sweep --preset demo --out $(DEMO_OUT)
	$(PY) -m nil interval $(DEMO_OUT)/runs.parquet --bootstrap 1000 --plot $(DEMO_OUT)/plots \
		--metrics agop_aofe_ratio_mean out_aofe_ratio wtw_lin_aofe_ratio_mean

test: build rust-test stubtest pytest

venv: $(STAMP)

$(STAMP): requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(STAMP)

build: $(STAMP)
	@# The distribution was called "nil" before (an unrelated PyPI project has that name); drop a stale install.
	@$(PY) -m pip uninstall -y -q nil >/dev/null 2>&1 || true
	$(VENV)/bin/maturin develop --release -q

rust-test:
	cargo fmt --all -- --check
	cargo clippy --release -p nil-core -p nil-python -q -- -D warnings
	cargo test --release -p nil-core -q

stubtest: build
	$(PY) -m mypy.stubtest nil._core --allowlist .ci/stubtest-allowlist.txt
	$(PY) -m mypy python/nil

pytest: build
	$(PY) -m pytest -q

# The property tests with fresh random examples, 20x as many per test (tests/hypothesis_profiles.py);
# `make test` runs them derandomized (the ci profile), so CI is reproducible.
test-random: build
	$(PY) -m pytest -q -m hypothesis --hypothesis-profile=random

bench: build
	$(PY) benches/bench_core.py

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) python/nil/_core*.so
