#!/usr/bin/env bash
# Installs and builds everything the tests and the demo need; every step is cached and a
# second run takes seconds. Needs: Rust 1.95 (cargo), Go 1.26, Python 3.11, openssl, curl.
set -euo pipefail
CCM_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$CCM_ROOT"
. scripts/env.sh

phase "check machine tools"
missing=()
for t in cargo go python3 openssl curl awk sha256sum; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq openssl curl gawk coreutils >/dev/null
  fi
  for t in "${missing[@]}"; do command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }; done
fi
echo "cargo $(cargo --version | cut -d' ' -f2), $(go version | cut -d' ' -f3), $(python3 --version)"
phase_done

istio_tools_start
echo "istiod: building in the background (e2e-tools/build.sh istio)"

phase "control plane from Go modules (etcd, kube-apiserver, cert-manager runner, helm)"
CCM_E2E_TOOLS=$(e2e-tools/build.sh)
echo "tools: $CCM_E2E_TOOLS"
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

phase "Rust crates and builds (debug for tests)"
cargo fetch --locked
cargo build --locked --workspace --all-targets
phase_done

phase "istiod from istio.io/istio (started in the background before the control plane)"
istio_tools_wait
echo "istio tools: $CCM_E2E_ISTIO"
phase_done
