#!/usr/bin/env bash
# The test command (README, CI): formatting, lints, every Rust test suite (unit, integration,
# end-to-end on a real kube-apiserver + cert-manager, chart checks), and the official Huawei
# Python SDK against the mock. Ends with one summary line. Run scripts/setup.sh once first
# (`make test` does).
set -uo pipefail
CCM_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$CCM_ROOT"
. scripts/env.sh
export CCM_E2E_TOOLS="${CCM_E2E_TOOLS:-$(e2e-tools/build.sh 2>/dev/null)}"
export CCM_E2E_ISTIO="${CCM_E2E_ISTIO:-$(e2e-tools/build.sh istio 2>/dev/null)}"
START=$(date +%s.%N)
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
failed_steps=()

phase "cargo fmt --check"
if cargo fmt --all -- --check; then echo "formatting ok"; else failed_steps+=(fmt); fi
phase_done

phase "cargo clippy --all-targets -D warnings"
if cargo clippy --locked --workspace --all-targets -- -D warnings; then echo "clippy ok"; else failed_steps+=(clippy); fi
phase_done

phase "cargo test --workspace (unit, integration, e2e, chart)"
cargo test --locked --workspace --no-fail-fast 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" = 0 ] || failed_steps+=(cargo-test)
phase_done

phase "official Huawei Cloud Python SDK against the mock (pytest)"
venv=$(ccm_venv_dir)
py="$venv/bin/python"
[ -x "$py" ] || py=python3
export CCM_MOCK_PCA_BIN="$CCM_ROOT/target/debug/ccm-mock-pca"
"$py" -m pytest tests/conformance -q -p no:cacheprovider 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" = 0 ] || failed_steps+=(pytest)
phase_done

# One line for everything: Rust suites ("test result: ok. N passed; M failed; K ignored") and
# pytest ("N passed", "M failed").
read -r passed failed ignored suites < <(awk '
  /^test result:/ { suites++; for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
  /[0-9]+ passed/ && !/^test result:/ { suites++; for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  END { printf "%d %d %d %d\n", p, f, g, suites }' "$LOG")
elapsed=$(elapsed_since "$START")
if [ ${#failed_steps[@]} -eq 0 ] && [ "$failed" = 0 ]; then
  printf 'test result: ok. %d passed; 0 failed; %d ignored; %d suites + fmt + clippy; finished in %.1fs\n' "$passed" "$ignored" "$suites" "$elapsed"
  exit 0
fi
printf 'test result: FAILED. %d passed; %d failed; %d ignored; %d suites; failed steps: %s; finished in %.1fs\n' \
  "$passed" "$failed" "$ignored" "$suites" "${failed_steps[*]:-none}" "$elapsed"
exit 1
