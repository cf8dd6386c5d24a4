# ferrosession — every person and CI goes through these targets. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
MATURIN := $(VENV)/bin/maturin
export VIRTUAL_ENV := $(abspath $(VENV))
# Keep build artefacts between runs (the machine has 2 cores; builds are slow).
export CARGO_TARGET_DIR ?= $(abspath target)

DEPS_STAMP := $(VENV)/.deps-stamp
SOURCES := $(shell find src python -name '*.rs' -o -name '*.py' -o -name '*.pyi' 2>/dev/null) Cargo.toml pyproject.toml

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

# The project's dependencies and demo extra, then the PEP 735 `dev` group (test, lint,
# bench, browser); `pip install --group` needs pip >= 25.1, hence the upgrade first.
$(DEPS_STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "maturin>=1.9.4,<2"
	$(PIP) install --quiet --group dev $$($(PY) -c 'import tomllib;p=tomllib.load(open("pyproject.toml","rb"))["project"];print(" ".join(sorted(set(p["dependencies"]+p["optional-dependencies"]["demo"]))))')
	touch $@

.PHONY: venv
venv: $(DEPS_STAMP) ## Create .venv with the build, test and lint tools

$(VENV)/.build-stamp: $(DEPS_STAMP) $(SOURCES)
	$(MATURIN) develop --quiet
	touch $@

.PHONY: develop
develop: $(VENV)/.build-stamp ## Build the extension (debug) into .venv

.PHONY: services
services: ## Install what the tests need from Debian when it is missing (redis-server, postgresql)
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (Debian package)"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@test -x /usr/lib/postgresql/15/bin/initdb || { \
	  echo "installing postgresql (Debian package; tests start their own cluster)"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

.PHONY: browser
browser: ## Install Debian's Chromium for the browser test when it is missing
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (Debian package)"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

.PHONY: test
test: develop services browser ## Build everything and run the Rust and Python tests
	$(MAKE) --no-print-directory docs
	cargo test --lib --quiet
	cargo test --lib --quiet -- --ignored a_million_nonces_are_distinct
	CARGO_TARGET_DIR=$(abspath target/fuzz-replay) cargo test --manifest-path fuzz/Cargo.toml --lib --quiet
	$(PY) -m pytest -q

FUZZ_SECONDS ?= 300
FUZZ_TARGETS := read_cookie round_trip

.PHONY: fuzz
fuzz: ## Fuzz the Rust cookie codec with cargo-fuzz (FUZZ_SECONDS per target, default 300)
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz-corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(abspath target/fuzz) cargo fuzz run --features fuzz -O $$t \
	    target/fuzz-corpus/$$t fuzz/seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	    -rss_limit_mb=4096 || exit 1; \
	done

.PHONY: lint
lint: develop ## ruff, mypy --strict (the package and every README example), cargo fmt --check, clippy -D warnings, actionlint
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/mypy
	$(PY) tests/readme_examples.py target/readme-examples >/dev/null
	$(VENV)/bin/mypy --strict target/readme-examples
	cargo fmt --check
	cargo fmt --manifest-path fuzz/Cargo.toml --check
	cargo clippy --all-targets --features python --quiet -- -D warnings
	CARGO_TARGET_DIR=$(abspath target/fuzz-replay) cargo clippy --manifest-path fuzz/Cargo.toml --all-targets --quiet -- -D warnings
	cargo clippy --all-targets --quiet -- -D warnings
	$(VENV)/bin/actionlint .github/workflows/*.yml

.PHONY: fmt
fmt: venv ## Format Python and Rust sources
	$(VENV)/bin/ruff format python tests benches
	$(VENV)/bin/ruff check --fix python tests benches
	cargo fmt

.PHONY: release
release: $(DEPS_STAMP) ## Build the extension with the release profile into .venv
	$(MATURIN) develop --release --quiet
	rm -f $(VENV)/.build-stamp

BENCH_SITE := $(abspath target/bench-site)

.PHONY: bench-build
bench-build: $(DEPS_STAMP) ## Build a release snapshot for the benchmarks (leaves .venv's build alone)
	rm -rf target/bench-wheels $(BENCH_SITE)
	$(MATURIN) build --release --quiet --out target/bench-wheels
	$(PIP) install --quiet --no-deps --target $(BENCH_SITE) target/bench-wheels/*.whl

BENCHES ?= asgi_overhead configurations storage_overhead sql_overhead primitives compat_overhead django_overhead fastapi_dependency wsgi_overhead memory uvicorn_wrk
BENCH_ARGS ?=

.PHONY: bench-tools
bench-tools: ## Install wrk (Debian package) for the real-server benchmark when it is missing
	@command -v wrk >/dev/null || { \
	  echo "installing wrk (Debian package)"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

.PHONY: bench
bench: bench-build services bench-tools ## Benchmarks against the Python peers (release build, in-process)
	for b in $(BENCHES); do PYTHONPATH=$(BENCH_SITE) $(PY) benches/$$b.py $(BENCH_ARGS) || exit 1; done
	$(PY) benches/render.py

.PHONY: upstream
upstream: develop ## Starlette's and Flask's own session tests against the drop-ins, beside the originals
	$(PY) tests/upstream/run_upstream.py --baseline

# The wheel PyPI gets from Linux x86_64: abi3, linked by zig (the ziglang package, found
# on PATH through the venv) for glibc 2.17, so RHEL 8, Debian 11 and Ubuntu 20.04 install it.
# Other platforms need Rust targets this machine lacks: .github/workflows/release.yml.
WHEEL_DIR ?= dist

.PHONY: wheel
wheel: $(DEPS_STAMP) ## Build the abi3 manylinux2014 (manylinux_2_17) wheel and the sdist into dist/
	rm -f $(WHEEL_DIR)/ferrosession-*
	PATH="$(abspath $(VENV))/bin:$$PATH" $(MATURIN) build --release --quiet --zig --compatibility manylinux2014 --out $(WHEEL_DIR)
	$(MATURIN) sdist --out $(WHEEL_DIR)

.PHONY: docs
docs: $(DEPS_STAMP) ## Build the documentation site into target/site (mkdocs --strict)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $(abspath target/site)

.PHONY: demo
demo: develop ## Serve the demo app on http://127.0.0.1:8000 (sessions in ./.sessions)
	$(PY) -m ferrosession.demo --host 127.0.0.1 --port 8000

.PHONY: clean
clean: ## Remove build outputs (keeps .venv)
	cargo clean
	rm -rf dist
