#!/usr/bin/env bash
# Installs and builds everything the tests and the demo need; every step is cached and a
# second run takes seconds. Needs: Rust 1.95 (cargo), Go 1.26, Python 3.11, openssl, curl;
# as root on Debian it installs the container tools itself (scripts/setup-node.sh).
#
# The Go builds (control plane + node, istiod) run in the background while the container
# tools, the Python venv and the Rust builds are prepared; their logs follow their results.
set -euo pipefail
CCM_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$CCM_ROOT"
. scripts/env.sh

phase "check machine tools"
missing=()
for t in cargo go python3 openssl curl awk sha256sum make cc; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq openssl curl gawk coreutils make gcc >/dev/null
  fi
  for t in "${missing[@]}"; do command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }; done
fi
# Debian's python3 creates virtual environments only with python3-venv (ensurepip).
if ! python3 -c 'import ensurepip' 2>/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  python3 -c 'import ensurepip' 2>/dev/null || { echo "missing: python3-venv (ensurepip)" >&2; exit 1; }
fi
echo "cargo $(cargo --version | cut -d' ' -f2), $(go version | cut -d' ' -f3), $(python3 --version)"
phase_done

phase "Go builds started in the background: control plane + node, istiod"
control_plane_start
istio_tools_start
phase_done

phase "container tools: buildah, podman, runc, containerd, CNI plugins (scripts/setup-node.sh)"
scripts/setup-node.sh
phase_done

phase "Python SDK for the conformance suite"
venv=$(ccm_venv_dir)
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import huaweicloudsdkccm, pytest' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q -r tests/conformance/requirements.txt
fi
echo "venv: $venv ($("$venv/bin/python" -m pip show huaweicloudsdkccm | grep ^Version))"
phase_done

phase "cargo-deny $CARGO_DENY_VERSION started in the background"
deny_log=$(mktemp)
deny_pid=
if [ ! -x "$(cargo_deny_bin)" ]; then
  cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION" \
    --root "$CCM_CACHE/cargo-deny-$CARGO_DENY_VERSION" >"$deny_log" 2>&1 &
  deny_pid=$!
fi
phase_done

phase "Rust crates and builds (debug for tests)"
cargo fetch --locked
cargo build --locked --workspace --all-targets
phase_done

phase "controller image: release build + buildah (scripts/image.sh)"
scripts/image.sh
phase_done

phase "cargo-deny $CARGO_DENY_VERSION"
if [ -n "$deny_pid" ] && ! wait "$deny_pid"; then cat "$deny_log" >&2; exit 1; fi
rm -f "$deny_log"
"$(cargo_deny_bin)" --version
phase_done

phase "control plane + node from Go modules (etcd, kube-apiserver, kubelet, scheduler, controller-manager, cert-manager runner, helm, pause)"
control_plane_wait
echo "tools: $CCM_E2E_TOOLS"
phase_done

phase "istiod from istio.io/istio"
istio_tools_wait
echo "istio tools: $CCM_E2E_ISTIO"
phase_done
