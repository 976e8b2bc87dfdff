# crust developer entry points. `make help` lists them.
CARGO ?= cargo

.PHONY: help build release monitor-static run cni-default test test-deps bench bench-hooks lint package package-test spdy-interop

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
	$(MAKE) cni-default
	./target/debug/crust

CNI_NET_DIR ?= /etc/cni/net.d

cni-default: ## Install contrib/cni/10-crust-bridge.conflist into $(CNI_NET_DIR) if it has no CNI config
	@mkdir -p $(CNI_NET_DIR)
	@if [ -n "$$(find $(CNI_NET_DIR) -maxdepth 1 \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) -print -quit)" ]; then \
		echo "cni-default: $(CNI_NET_DIR) already has a CNI config; leaving it alone"; \
	else \
		install -m 0644 contrib/cni/10-crust-bridge.conflist $(CNI_NET_DIR)/10-crust-bridge.conflist; \
		echo "cni-default: installed $(CNI_NET_DIR)/10-crust-bridge.conflist (bridge crust0, 10.87.0.0/16)"; \
	fi

test-deps: ## Install the system packages the tests need (Debian 12, idempotent)
	./scripts/install-test-deps.sh

test: test-deps ## Install test deps, then run every test suite (unit + end-to-end)
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	$(MAKE) spdy-interop
	$(MAKE) package-test

SPDY_PEER = proto/src/spdy/session/testdata/spdystream-peer
spdy-interop: ## crust's SPDY/3.1 session against moby/spdystream (the library kubelet and kubectl use)
	cd $(SPDY_PEER) && GOPROXY=off GOFLAGS=-mod=mod GOCACHE=$(CURDIR)/target/go-cache go build -o $(CURDIR)/target/spdystream-peer .
	INTEROP_BIN=$(CURDIR)/target/spdystream-peer $(CARGO) test -p crust-proto --features spdy interop_tests -- --ignored

bench: test-deps release ## Pull, pod/container lifecycle and CNI network benchmarks (release build)
	$(CARGO) bench --bench crust-bench

bench-hooks: ## OCI hooks: per-create re-scan cost next to a bare read_dir+stat floor
	$(CARGO) bench -p crust-hooks --bench hooks-bench

lint: ## rustfmt --check and clippy with warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

package: release ## Release build, then the DEB and RPM into target/package/ (scripts/package.sh)
	./scripts/package.sh

package-test: test-deps package ## Build the packages, dpkg -i the DEB here, check it, list the RPM, purge
	./scripts/package-test.sh
