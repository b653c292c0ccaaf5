# Two commands for a newcomer: `make demo` and `make test`. Everything else is a helper.
.PHONY: demo test setup build crds lint bench conformance tools clean-cache

# The local demo: real control plane + mock PCA + controller, both Istio practices.
demo:
	@scripts/demo.sh $(ARGS)

# The test command CI runs (after installing what it needs).
test: setup
	@scripts/test.sh

setup:
	@scripts/setup.sh

build:
	cargo build --release --bin ccm-issuer --bin ccm-mock-pca

# Regenerate crds/ and the chart's CRDs from src/crd.rs.
crds:
	cargo run --quiet --bin ccm-issuer -- crds --out-dir crds --out-dir charts/ccm-issuer/crds

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo bench --bench signer
	cargo bench --bench mock_throughput
	cargo bench --bench controller_memory

conformance:
	CCM_MOCK_PCA_BIN=$(CURDIR)/target/debug/ccm-mock-pca python3 -m pytest tests/conformance -q

tools:
	@e2e-tools/build.sh
	@e2e-tools/build.sh istio

clean-cache:
	rm -rf $(HOME)/.cache/ccm-issuer
