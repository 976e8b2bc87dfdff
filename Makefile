# crust developer entry points. `make help` lists them.
CARGO ?= cargo

.PHONY: help build run test test-deps bench lint

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Build the crust daemon (debug)
	$(CARGO) build --bin crust

run: build ## Build and run the daemon as root with its embedded default config
	@if [ "$$(id -u)" -ne 0 ]; then echo "make run: crust needs root (try: sudo make run)" >&2; exit 1; fi
	./target/debug/crust

test-deps: ## Install the system packages the tests need (Debian 12, idempotent)
	./scripts/install-test-deps.sh

test: test-deps ## Install test deps, then run every test suite (unit + end-to-end)
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

bench: test-deps ## Pull and pod/container lifecycle benchmarks (release build)
	$(CARGO) build --release --workspace --bins
	$(CARGO) bench --bench crust-bench

lint: ## rustfmt --check and clippy with warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
