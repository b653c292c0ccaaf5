# Shared settings of the build and test scripts (sourced, not run).
# Caches live outside the repository, keyed by what they were built from.
CCM_CACHE="${CCM_CACHE:-$HOME/.cache/ccm-issuer}"
# Python venv for the SDK conformance suite, keyed by the pinned requirements.
ccm_venv_dir() {
  local hash
  hash=$(sha256sum "$CCM_ROOT/tests/conformance/requirements.txt" | cut -c1-12)
  echo "$CCM_CACHE/venv-py$(python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')-$hash"
}
# Prints a phase header and remembers its start.
phase() { PHASE_NAME="$1"; PHASE_START=$(date +%s.%N); echo; echo "=== $1"; }
phase_done() {
  local now; now=$(date +%s.%N)
  printf '=== %s: done in %.1fs\n' "$PHASE_NAME" "$(echo "$now - $PHASE_START" | bc)"
}
