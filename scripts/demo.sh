#!/usr/bin/env bash
# `make demo`: builds what the demo needs (cached), then runs it. Extra arguments go to
# ccm-demo (e.g. --keep to leave the cluster up for kubectl; --chart to run the controller
# through the Helm chart on a real node: needs root and Debian's container tools, installed
# here, and builds the image, a release build the first time).
set -euo pipefail
CCM_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$CCM_ROOT"
. scripts/env.sh
demo_start=$(date +%s.%N)
istio_tools_start
phase "control plane tools (etcd, kube-apiserver, cert-manager) from Go modules"
export CCM_E2E_TOOLS=$(e2e-tools/build.sh)
phase_done
# The dev profile: after `make test` these are already built, and a first build is about half
# as long as a release build. The demo signs a handful of certificates; speed does not matter.
phase "ccm-issuer, ccm-mock-pca and the demo driver (cargo build)"
cargo build --bin ccm-issuer --bin ccm-mock-pca -p ccm-issuer -p ccm-mock-pca
cargo build -p ccm-e2e --bin ccm-demo
phase_done
# --chart: the controller through the Helm chart on a real node, from the local image.
if [[ " $* " == *" --chart "* ]]; then
  phase "container tools and the controller image (scripts/setup-node.sh, scripts/image.sh)"
  scripts/setup-node.sh
  scripts/image.sh >/dev/null
  phase_done
fi
phase "istiod from istio.io/istio (built in the background; cached after the first run)"
istio_tools_wait || echo "istiod could not be built (log above): practice 1 runs without it" >&2
phase_done
phase "demo"
"$CCM_ROOT/target/debug/ccm-demo" --bin-dir "$CCM_ROOT/target/debug" "$@"
phase_done
echo "demo total: $(elapsed_since "$demo_start")s"
