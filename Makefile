# crust developer entry points. `make help` lists them.
CARGO ?= cargo

.PHONY: help build release monitor-static run test test-deps bench lint package package-test

# The monitor and pause binaries run once per container/pod, so they are built static,
# non-PIE, size-optimised and without unwinding (conmon-rs/README.md has the measurements).
MONITOR_RUSTFLAGS = -C opt-level=s -C panic=abort -C target-feature=+crt-static -C relocation-model=static

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## Build crust, crust-monitor and crust-pause (debug)
	$(CARGO) build --workspace --bins

release: ## Release build of all binaries, with the small static monitor and pause
	$(CARGO) build --release --workspace --bins
	$(MAKE) monitor-static

monitor-static: ## Rebuild target/release/crust-{monitor,pause} static and size-optimised
	$(CARGO) rustc -p crust-monitor --release --bin crust-monitor -- $(MONITOR_RUSTFLAGS)
	$(CARGO) rustc -p crust-monitor --release --bin crust-pause -- $(MONITOR_RUSTFLAGS)

run: build ## Build and run the daemon as root with its embedded default config
	@if [ "$$(id -u)" -ne 0 ]; then echo "make run: crust needs root (try: sudo make run)" >&2; exit 1; fi
	./target/debug/crust

test-deps: ## Install the system packages the tests need (Debian 12, idempotent)
	./scripts/install-test-deps.sh

test: test-deps ## Install test deps, then run every test suite (unit + end-to-end)
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	$(MAKE) package-test

bench: test-deps release ## Pull and pod/container lifecycle benchmarks (release build)
	$(CARGO) bench --bench crust-bench

lint: ## rustfmt --check and clippy with warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

package: release ## Release build, then the DEB and RPM into target/package/ (scripts/package.sh)
	./scripts/package.sh

package-test: test-deps package ## Build the packages, dpkg -i the DEB here, check it, list the RPM, purge
	./scripts/package-test.sh
