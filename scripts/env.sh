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
# Background builds of e2e-tools/build.sh components (each has its own cache key and lock, so
# they build in parallel with each other and with the Rust build): tools_start <name> [args]
# starts one; tools_wait <name> <variable> waits for it, shows its log and exports the
# variable as its result (the key directory).
declare -A TOOLS_PID TOOLS_OUT TOOLS_LOG
tools_start() {
  local name=$1
  shift
  TOOLS_OUT[$name]=$(mktemp)
  TOOLS_LOG[$name]=$(mktemp)
  "$CCM_ROOT/e2e-tools/build.sh" "$@" >"${TOOLS_OUT[$name]}" 2>"${TOOLS_LOG[$name]}" &
  TOOLS_PID[$name]=$!
}
tools_wait() {
  local name=$1 var=$2 rc=0
  wait "${TOOLS_PID[$name]}" || rc=$?
  cat "${TOOLS_LOG[$name]}" >&2
  if [ "$rc" = 0 ]; then
    printf -v "$var" '%s' "$(tail -n 1 "${TOOLS_OUT[$name]}")"
    export "${var?}"
  fi
  rm -f "${TOOLS_OUT[$name]}" "${TOOLS_LOG[$name]}"
  return "$rc"
}
# The control plane and the node (CCM_E2E_TOOLS); istiod (CCM_E2E_ISTIO).
control_plane_start() { tools_start control-plane; }
control_plane_wait() { tools_wait control-plane CCM_E2E_TOOLS; }
istio_tools_start() { tools_start istio istio; }
istio_tools_wait() { tools_wait istio CCM_E2E_ISTIO; }
