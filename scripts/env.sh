# Shared settings of the build and test scripts (sourced, not run).
# Caches live outside the repository, keyed by what they were built from.
CCM_CACHE="${CCM_CACHE:-$HOME/.cache/ccm-issuer}"
# Python venv for the SDK conformance suite, keyed by the pinned requirements.
ccm_venv_dir() {
  local hash
  hash=$(sha256sum "$CCM_ROOT/tests/conformance/requirements.txt" | cut -c1-12)
  echo "$CCM_CACHE/venv-py$(python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')-$hash"
}
# Seconds since a `date +%s.%N` timestamp (awk: always present, unlike bc).
elapsed_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
# Prints a phase header and remembers its start.
phase() { PHASE_NAME="$1"; PHASE_START=$(date +%s.%N); echo; echo "=== $1"; }
phase_done() { printf '=== %s: done in %ss\n' "$PHASE_NAME" "$(elapsed_since "$PHASE_START")"; }
# istiod (e2e-tools/build.sh istio: its own cache key and lock) builds in the background while
# the other steps run; istio_tools_wait waits for it and exports CCM_E2E_ISTIO.
istio_tools_start() {
  ISTIO_TOOLS_OUT=$(mktemp)
  ISTIO_TOOLS_LOG=$(mktemp)
  "$CCM_ROOT/e2e-tools/build.sh" istio >"$ISTIO_TOOLS_OUT" 2>"$ISTIO_TOOLS_LOG" &
  ISTIO_TOOLS_PID=$!
}
istio_tools_wait() {
  local rc=0
  wait "$ISTIO_TOOLS_PID" || rc=$?
  cat "$ISTIO_TOOLS_LOG" >&2
  [ "$rc" = 0 ] && CCM_E2E_ISTIO=$(tail -n 1 "$ISTIO_TOOLS_OUT") && export CCM_E2E_ISTIO
  rm -f "$ISTIO_TOOLS_OUT" "$ISTIO_TOOLS_LOG"
  return "$rc"
}
