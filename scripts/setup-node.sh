#!/usr/bin/env bash
# Machine set-up for the container image (scripts/image.sh) and the e2e node
# (tests/e2e_node.rs, `make demo ARGS=--chart`), on Debian as root. Idempotent: a second
# run only checks.
#
#   buildah, podman                  build the image from the local binary; run it
#   runc                             the OCI runtime of podman and containerd
#   containerd                       the node's container runtime (CRI), with `ctr`
#   containernetworking-plugins      the node's pod network (bridge, host-local, loopback)
#   iproute2                         the pod bridge inside the node's network namespace
#
# and a containers.conf drop-in: runtime runc (crun refuses this machine's hybrid cgroup
# layout) and no default ulimits (podman's defaults cannot be applied here).
set -euo pipefail

packages=(buildah podman runc containerd containernetworking-plugins iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ "$(id -u)" == 0 ]] || { echo "setup-node: run as root to install ${missing[*]}" >&2; exit 1; }
  command -v apt-get >/dev/null || { echo "setup-node: needs Debian's apt-get for ${missing[*]}" >&2; exit 1; }
  echo "setup-node: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

conf=/etc/containers/containers.conf.d/50-ccm-issuer.conf
want='[containers]
default_ulimits = []

[engine]
runtime = "runc"'
if [[ "$(cat "$conf" 2>/dev/null)" != "$want" ]]; then
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" > "$conf"
  echo "setup-node: wrote $conf"
fi

echo "setup-node: $(buildah --version), $(podman --version), $(runc --version | head -n 1)," \
  "containerd $(containerd --version | awk '{ print $3 }'), CNI plugins in /usr/lib/cni," \
  "podman runtime $(podman info --format '{{.Host.OCIRuntime.Name}}')"
