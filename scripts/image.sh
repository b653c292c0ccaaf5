#!/usr/bin/env bash
# Builds the controller image locally, without Docker, a registry or a base image: the
# release binary (built here if needed), scripts/image-rootfs.sh (the same root file system
# recipe as the Dockerfile's builder stage), then the Dockerfile's own runtime stage with
# buildah, its COPY taking the tree from the build context. The image lands in the local
# containers storage (podman sees it) as localhost/ccm-issuer:<version>, and as an archive
# for other runtimes (the e2e node imports it into containerd):
#   target/image/ccm-issuer.tar          docker-archive, tagged localhost/ccm-issuer:<version>
# Prints the image's size; the last stdout line is the archive's path.
#
# Needs buildah (scripts/setup-node.sh installs and configures it). Environment:
# CCM_IMAGE_BINARY (use this binary instead of building target/release/ccm-issuer).
set -euo pipefail
CCM_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$CCM_ROOT"
command -v buildah >/dev/null || { echo "image: buildah is missing (run scripts/setup-node.sh)" >&2; exit 1; }

binary=${CCM_IMAGE_BINARY:-}
if [[ -z "$binary" ]]; then
  cargo build --release --locked --bin ccm-issuer >&2
  binary=target/release/ccm-issuer
fi
version=$("$binary" --version | awk '{ print $2 }')
[[ -n "$version" ]] || { echo "image: $binary --version printed no version" >&2; exit 1; }
tag="localhost/ccm-issuer:$version"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
scripts/image-rootfs.sh "$binary" "$ctx/rootfs"

# The Dockerfile's runtime stage, verbatim but for where the root file system comes from.
copy_line='COPY --from=builder /rootfs/ /'
sed -n '/^FROM scratch$/,$p' Dockerfile > "$ctx/Containerfile"
[[ $(grep -cxF "$copy_line" "$ctx/Containerfile") == 1 ]] ||
  { echo "image: the Dockerfile's runtime stage must start at 'FROM scratch' and contain '$copy_line' once" >&2; exit 1; }
sed -i "s#^$copy_line\$#COPY rootfs/ /#" "$ctx/Containerfile"

start=$(date +%s.%N)
buildah build --quiet --layers=false --tag "$tag" --file "$ctx/Containerfile" "$ctx" >/dev/null
mkdir -p target/image
archive="$CCM_ROOT/target/image/ccm-issuer.tar"
rm -f "$archive"
buildah push --quiet "$tag" "docker-archive:$archive:$tag" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image: $tag built in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s:" \
  "$size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB) uncompressed," \
  "archive $(stat -c %s "$archive") bytes, gzip -6 $(gzip -6 -c "$archive" | wc -c) bytes" >&2
echo "$archive"
