# syntax=docker/dockerfile:1
#
# ccm-issuer controller image.
#
#   docker build -t <your-registry>/ccm-issuer:0.1.0 .
#
# Stage 1 builds the release binary; stage 2 is `scratch` with only what that binary needs at
# run time: itself, the shared libraries it links (glibc, libgcc_s: found with ldd, so the
# list follows the target architecture), the CA certificates (rustls reads the system roots
# for PCA endpoints without their own caBundle) and a passwd/group entry for the non-root
# user 65532. No shell, no package manager. docs/image.md has the measured sizes.

ARG RUST_IMAGE=rust:1.95-bookworm

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# The whole workspace: cargo needs every member's manifest and the declared test and bench
# targets to load it, even though only the controller binary is built.
COPY . .
# Symbols are stripped through the profile environment (the repository profile is unchanged).
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ccm-issuer \
 && install -D -m 0755 target/release/ccm-issuer /rootfs/ccm-issuer
RUN set -eu; \
    for lib in $(ldd /rootfs/ccm-issuer | grep -o '/[^ ]*'); do \
        cp --parents -L "$lib" /rootfs/; \
    done; \
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt; \
    echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /rootfs/etc/passwd; \
    echo 'nonroot:x:65532:' > /rootfs/etc/group; \
    echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf; \
    /rootfs/ccm-issuer --version

FROM scratch
COPY --from=builder /rootfs/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
# /livez, /readyz and /metrics (--health-bind-address).
EXPOSE 9402
LABEL org.opencontainers.image.title="ccm-issuer" \
      org.opencontainers.image.description="cert-manager external issuer for Huawei Cloud CCM Private CA" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/ccm-issuer"]
CMD ["controller"]
