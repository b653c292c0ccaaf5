#!/usr/bin/env bash
# The controller image's root file system, in one place for both image builds: the
# Dockerfile's builder stage (users with Docker) and scripts/image.sh (a local buildah build
# from the locally built release binary, no base image).
#
#   scripts/image-rootfs.sh BINARY ROOTFS_DIR
#
# ROOTFS_DIR (created, must not exist yet) receives exactly what the binary needs at run time:
#   /ccm-issuer                           the binary, symbols stripped
#   the shared libraries ldd lists        glibc, libgcc_s and the dynamic loader (follows the
#                                         build machine's architecture)
#   /etc/ssl/certs/ca-certificates.crt    system roots: PCA endpoints without their own
#                                         caBundle are verified against them
#   /etc/passwd, /etc/group               the non-root user and group 65532 ("nonroot")
#   /etc/nsswitch.conf                    name resolution from /etc/hosts and DNS
# No shell, no package manager. The binary is run once from the finished tree with
# `--version` (through the tree's own dynamic loader) to prove nothing is missing.
set -euo pipefail
binary=${1:?usage: image-rootfs.sh BINARY ROOTFS_DIR}
rootfs=${2:?usage: image-rootfs.sh BINARY ROOTFS_DIR}
[[ -x "$binary" ]] || { echo "image-rootfs: $binary is not an executable" >&2; exit 1; }
[[ ! -e "$rootfs" ]] || { echo "image-rootfs: $rootfs exists already" >&2; exit 1; }
certs=/etc/ssl/certs/ca-certificates.crt
[[ -s "$certs" ]] || { echo "image-rootfs: $certs missing (install the ca-certificates package)" >&2; exit 1; }

mkdir -p "$rootfs"
install -m 0755 "$binary" "$rootfs/ccm-issuer"
strip --strip-all "$rootfs/ccm-issuer"
# ldd prints "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and the loader's own path;
# linux-vdso has no file and is skipped by the pattern.
for lib in $(ldd "$rootfs/ccm-issuer" | grep -o '/[^ ]*'); do
  cp --parents -L "$lib" "$rootfs/"
done
install -D -m 0644 "$certs" "$rootfs/etc/ssl/certs/ca-certificates.crt"
echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > "$rootfs/etc/passwd"
echo 'nonroot:x:65532:' > "$rootfs/etc/group"
echo 'hosts: files dns' > "$rootfs/etc/nsswitch.conf"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"

# The tree's own loader and libraries only (not the build machine's).
loader=$(ldd "$rootfs/ccm-issuer" | grep -o '/[^ ]*ld-linux[^ ]*' | head -n 1)
libdirs=$(find "$rootfs" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)
"$rootfs$loader" --library-path "$libdirs" "$rootfs/ccm-issuer" --version >/dev/null
echo "image-rootfs: $(du -sb "$rootfs" | cut -f1) bytes in $(find "$rootfs" -type f | wc -l) files at $rootfs" >&2
