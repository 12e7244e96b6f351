# Two commands do everything on a fresh Debian machine:
#   make up    install what is missing, build, and run Slipway on this machine
#   make test  install what is missing and run every test (unit, integration, browser)
#   make bench measure wakes, the gateway against nginx, a burst at zero and 1,000 projects
#              (bench/results.json and a table; see README.md, Benchmarks)
# CARGO_TARGET_DIR may point outside the clone to reuse builds; by default it is ./target.

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
# Real Traefik, OpenBao and ansible-lint, installed by `scripts/setup.sh test` (or `tools`).
SLIPWAY_TOOLS ?= $(HOME)/.cache/slipway/tools
export SLIPWAY_TOOLS
SLIPWAY_ARGS ?=

.PHONY: up test bench setup-up setup-test setup-bench build build-release build-bench test-rust test-bench-logic test-ansible test-browser lint fmt clean

up: setup-up build-release slipway.toml
	$(CARGO_TARGET_DIR)/release/slipway up $(SLIPWAY_ARGS)

test: setup-test build test-rust test-bench-logic test-ansible test-browser

# Needs root (sandboxes), like `make up`; sample counts and sections are set with BENCH_* variables
# (bench/run.py lists them). Not part of `make test`.
bench: setup-up setup-bench build-bench
	python3 bench/run.py

setup-up:
	@scripts/setup.sh up

setup-test:
	@scripts/setup.sh test

setup-bench:
	@bench/setup.sh

# A first run gets a working configuration; edit slipway.toml to change the allowed domains.
slipway.toml:
	cp slipway.example.toml slipway.toml
	@echo "created slipway.toml from slipway.example.toml (allowed_email_domains = pusan.ac.kr); edit it for your university"

build:
	cargo build --locked --workspace --all-targets

build-release:
	cargo build --locked --release -p portal --bin slipway

build-bench: build-release
	cargo build --locked --release -p orchestrator --example gateway_bench

# The sandbox tests need root, bubblewrap and cgroups; here they must run, never skip.
test-rust:
	SLIPWAY_REQUIRE_SANDBOX_TESTS=1 cargo test --locked --workspace

# The benchmark's own arithmetic (percentiles, histogram quantiles, wrk parsing, the table).
test-bench-logic:
	cd bench && python3 -m unittest -q test_stats

# The cluster playbook: syntax and ansible-lint's production profile (offline: no Galaxy).
test-ansible:
	cd ansible && PATH="$(SLIPWAY_TOOLS)/bin:$$PATH" ansible-playbook -i inventory.example.ini --syntax-check site.yml
	cd ansible && PATH="$(SLIPWAY_TOOLS)/bin:$$PATH" ansible-lint --offline

test-browser:
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	cd tests/browser && SLIPWAY_BIN=$(CARGO_TARGET_DIR)/debug/slipway node --test

lint:
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf tests/browser/node_modules web/terminal/node_modules
