#!/usr/bin/env bash
# Builds the real control-plane components for ccm-issuer's e2e tests from Go modules.
#
# `build.sh` (or `build.sh control-plane`):
#   etcd            e2e-tools/etcd         (go.etcd.io/etcd/server/v3)
#   kube-apiserver  e2e-tools/kube         (k8s.io/kubernetes/cmd/kube-apiserver, version ldflags)
#   kubelet, kube-scheduler, kube-controller-manager
#                   e2e-tools/kube         (same module and ldflags; the node scenarios)
#   cm-controller   e2e-tools/certmanager  (our runner over cert-manager's pkg/controller)
#   helm            e2e-tools/helm         (helm.sh/helm/v3/cmd/helm)
#   pause           e2e-tools/pause        (our pod sandbox process for the node's pause image)
# and copies cert-manager's CRD YAMLs from the Go module cache.
#
# `build.sh istio` (a separate cache key and lock, so it can run in parallel with the above):
#   pilot-discovery      e2e-tools/istio   (istiod: istio.io/istio/pilot/cmd/pilot-discovery)
#   istio-workload-cert  e2e-tools/istio   (our client: a workload certificate as the sidecar asks)
# and copies Istio's CRDs (manifests/charts/base/files/crd-all.gen.yaml) from the module cache.
#
# Output goes to a cache directory OUTSIDE the repo, keyed by the component versions and a
# short hash of our wrapper files (go.mod, go.sum, *.go):
#   ${CCM_E2E_CACHE:-${CCM_CACHE:-$HOME/.cache/ccm-issuer}/e2e-tools}/<key>/{bin,crds,env}
# A second run finds everything there and returns within a second or two.
#
# Progress goes to stderr; the LAST stdout line is the key directory, so
#   export CCM_E2E_TOOLS=$(e2e-tools/build.sh)
#   export CCM_E2E_ISTIO=$(e2e-tools/build.sh istio)
# work. Environment: CCM_E2E_CACHE (cache root; default $CCM_CACHE/e2e-tools), CCM_E2E_BUILD_JOBS (go build -p, default 2).
set -euo pipefail

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
# Bump when this script's build logic changes in a way that must invalidate old caches.
BUILD_REVISION=r1
JOBS=${CCM_E2E_BUILD_JOBS:-2}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[e2e-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH"
COMPONENT=${1:-control-plane}
case "$COMPONENT" in
  control-plane | istio) ;;
  *) die "unknown component '$COMPONENT' (usage: build.sh [control-plane|istio])" ;;
esac

# Version of module $2 as required by our wrapper module in directory $1.
modver() {
  local v
  v=$(awk -v m="$2" '($1 == m && $2 ~ /^v/) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' "$here/$1/go.mod")
  [[ -n "$v" ]] || die "$1/go.mod does not require $2"
  printf '%s' "$v"
}

# Short hash of our wrapper files (go.mod, go.sum, *.go) in the given module directories.
wrapper_hash() {
  (cd "$here" && find "$@" -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-10)
}

CACHE_ROOT=${CCM_E2E_CACHE:-${CCM_CACHE:-$HOME/.cache/ccm-issuer}/e2e-tools}
total_start=$SECONDS

# use_key_dir <key>: creates $CACHE_ROOT/<key>/{bin,crds}, sets OUT, BIN, CRDS and holds the
# key's lock until the script ends (serialises concurrent callers, e.g. several test binaries,
# on the same key; different keys build in parallel).
use_key_dir() {
  OUT="$CACHE_ROOT/$1"
  BIN="$OUT/bin"
  CRDS="$OUT/crds"
  mkdir -p "$BIN" "$CRDS"
  exec 9>"$OUT/.lock"
  flock 9
  log "cache dir: $OUT"
  log "go: $(go version | cut -d' ' -f3-), -p $JOBS"
}

# build_component <name> <module dir> <output binary> <go build args...>
build_component() {
  local name=$1 dir=$2 out=$3
  shift 3
  if [[ -x "$BIN/$out" ]]; then
    log "$name: cached ($BIN/$out)"
    return
  fi
  local start=$SECONDS
  log "$name: building ..."
  (cd "$here/$dir" && go build -p "$JOBS" -o "$BIN/.$out.tmp" "$@") ||
    die "$name: go build failed"
  mv -f "$BIN/.$out.tmp" "$BIN/$out"
  log "$name: built in $((SECONDS - start))s ($(du -h "$BIN/$out" | cut -f1))"
}

# Directory of module $2 (path@version) in the Go module cache, downloaded if needed, as
# required by our wrapper module in directory $1 (so go.sum verifies it).
module_dir() {
  local d
  d=$(cd "$here/$1" && go mod download -json "$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d "$d" ]] || die "$2: not found in the module cache"
  printf '%s' "$d"
}

# copy_crds <name> <source files...>: copies CRD YAMLs (read from the module cache, never
# committed) into $CRDS once.
copy_crds() {
  local name=$1 start=$SECONDS tmp
  shift
  if compgen -G "$CRDS/*.yaml" >/dev/null; then
    log "$name: cached ($CRDS)"
    return
  fi
  for f in "$@"; do [[ -f "$f" ]] || die "$name: $f not found in the module cache"; done
  tmp=$(mktemp -d "$OUT/.crds.XXXXXX")
  chmod 755 "$tmp"
  cp "$@" "$tmp/"
  chmod u+w "$tmp"/*.yaml
  rmdir "$CRDS" && mv "$tmp" "$CRDS"
  log "$name: $(ls "$CRDS" | wc -l) files copied in $((SECONDS - start))s"
}

# finish <VAR=value lines...>: writes $OUT/env atomically and prints the key directory.
finish() {
  printf '%s\n' "$@" >"$OUT/env.tmp"
  mv -f "$OUT/env.tmp" "$OUT/env"
  log "done in $((SECONDS - total_start))s"
  printf '%s\n' "$OUT"
}

# === istio: istiod + our workload-certificate client =====================================
if [[ "$COMPONENT" == istio ]]; then
  ISTIO_VERSION=$(modver istio istio.io/istio)
  use_key_dir "istio-${ISTIO_VERSION}_${BUILD_REVISION}-$(wrapper_hash istio)"
  istio_src=$(module_dir istio "istio.io/istio@${ISTIO_VERSION}")
  # What istio's Makefile stamps into a dev build: VERSION file + "-dev", the commit (here the
  # pseudo-version's commit prefix; the module zip has no .git) and a clean tree.
  ISTIO_BUILD_VERSION="$(tr -d '[:space:]' <"$istio_src/VERSION")-dev"
  istio_ldflags="-s -w
 -X istio.io/istio/pkg/version.buildVersion=${ISTIO_BUILD_VERSION}
 -X istio.io/istio/pkg/version.buildGitRevision=${ISTIO_VERSION##*-}
 -X istio.io/istio/pkg/version.buildStatus=Clean
 -X istio.io/istio/pkg/version.buildTag=${ISTIO_VERSION}
 -X istio.io/istio/pkg/version.buildOS=$(go env GOOS)
 -X istio.io/istio/pkg/version.buildArch=$(go env GOARCH)"
  # Istio's STANDARD_TAGS (Makefile.core.mk); only the one binary, nothing else of istio.
  build_component "pilot-discovery (istiod ${ISTIO_BUILD_VERSION}, istio.io/istio ${ISTIO_VERSION})" istio pilot-discovery \
    -tags vtprotobuf,disable_pgv -ldflags "$(tr '\n' ' ' <<<"$istio_ldflags")" istio.io/istio/pilot/cmd/pilot-discovery
  # Same tags: it reuses pilot-discovery's compiled packages, so it is mostly a link.
  build_component "istio-workload-cert" istio istio-workload-cert \
    -tags vtprotobuf,disable_pgv -ldflags "-s -w" ./workloadcert
  copy_crds "Istio CRDs" "$istio_src/manifests/charts/base/files/crd-all.gen.yaml"
  finish "CCM_E2E_ISTIO=$OUT" "CCM_E2E_ISTIO_MODULE_VERSION=$ISTIO_VERSION" "CCM_E2E_ISTIO_VERSION=$ISTIO_BUILD_VERSION"
  exit 0
fi

# === control plane ========================================================================
K8S_VERSION=$(modver kube k8s.io/kubernetes)
ETCD_VERSION=$(modver etcd go.etcd.io/etcd/server/v3)
CM_VERSION=$(modver certmanager github.com/cert-manager/cert-manager)
HELM_VERSION=$(modver helm helm.sh/helm/v3)
use_key_dir "k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_cm-${CM_VERSION}_helm-${HELM_VERSION}_${BUILD_REVISION}-$(wrapper_hash etcd kube certmanager helm pause)"

# --- etcd --------------------------------------------------------------------------------
build_component "etcd ${ETCD_VERSION}" etcd etcd \
  -ldflags "-s -w" go.etcd.io/etcd/server/v3

# --- kube-apiserver ----------------------------------------------------------------------
# Same -X variables as kubernetes' hack/lib/version.sh, so /version reports $K8S_VERSION.
k8s_minor=$(cut -d. -f2 <<<"${K8S_VERSION#v}")
k8s_build_date=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" 2>/dev/null |
  sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p' | xargs -r cat 2>/dev/null |
  sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' || true)
k8s_build_date=${k8s_build_date:-1970-01-01T00:00:00Z}
kube_ldflags="-s -w
 -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}
 -X k8s.io/component-base/version.gitMajor=1
 -X k8s.io/component-base/version.gitMinor=${k8s_minor}
 -X k8s.io/component-base/version.gitTreeState=clean
 -X k8s.io/component-base/version.buildDate=${k8s_build_date}
 -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}
 -X k8s.io/client-go/pkg/version.gitMajor=1
 -X k8s.io/client-go/pkg/version.gitMinor=${k8s_minor}"
build_component "kube-apiserver ${K8S_VERSION}" kube kube-apiserver \
  -ldflags "$(tr '\n' ' ' <<<"$kube_ldflags")" k8s.io/kubernetes/cmd/kube-apiserver

# --- cert-manager runner -----------------------------------------------------------------
build_component "cm-controller (cert-manager ${CM_VERSION})" certmanager cm-controller \
  -ldflags "-s -w" .

# --- helm --------------------------------------------------------------------------------
# Same -X variables as helm's Makefile (version + the k8s version its lint/capabilities use).
helm_k8s=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$here/helm/go.mod")
helm_k8s_minor=$(cut -d. -f2 <<<"${helm_k8s#v}")
helm_ldflags="-s -w
 -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}
 -X helm.sh/helm/v3/internal/version.gitTreeState=clean
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${helm_k8s_minor}
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${helm_k8s_minor}"
build_component "helm ${HELM_VERSION}" helm helm \
  -ldflags "$(tr '\n' ' ' <<<"$helm_ldflags")" helm.sh/helm/v3/cmd/helm

# --- the node: kubelet, kube-scheduler, kube-controller-manager --------------------------
# Same module, version and ldflags as kube-apiserver (they share its Go build cache). Used
# only by the node scenarios (ccm-e2e's `node` module); containerd, runc and the CNI plugins
# come from Debian (scripts/setup-node.sh).
for cmd in kubelet kube-scheduler kube-controller-manager; do
  build_component "$cmd ${K8S_VERSION}" kube "$cmd" \
    -ldflags "$(tr '\n' ' ' <<<"$kube_ldflags")" "k8s.io/kubernetes/cmd/$cmd"
done

# --- pause: the node's pod sandbox process (our own, e2e-tools/pause) ---------------------
build_component "pause" pause pause -ldflags "-s -w" .

# --- cert-manager CRDs ----------------------------------------------------------------
cm_src=$(module_dir certmanager "github.com/cert-manager/cert-manager@${CM_VERSION}")
copy_crds "cert-manager CRDs" "$cm_src"/deploy/crds/*.yaml

finish "CCM_E2E_TOOLS=$OUT" "CCM_E2E_K8S_VERSION=$K8S_VERSION" "CCM_E2E_ETCD_VERSION=$ETCD_VERSION" \
  "CCM_E2E_CERT_MANAGER_VERSION=$CM_VERSION" "CCM_E2E_HELM_VERSION=$HELM_VERSION"
