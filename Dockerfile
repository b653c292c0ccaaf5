# syntax=docker/dockerfile:1
#
# ccm-issuer controller image.
#
#   docker build -t <your-registry>/ccm-issuer:0.1.0 .
#
# Stage 1 builds the release binary and lays out the runtime root file system with
# scripts/image-rootfs.sh: the binary (stripped), the shared libraries it links (glibc,
# libgcc_s: found with ldd, so the list follows the target architecture), the CA
# certificates (rustls reads the system roots for PCA endpoints without their own caBundle)
# and a passwd/group entry for the non-root user 65532. Stage 2 is `scratch` with only that.
# No shell, no package manager. scripts/image.sh builds the same image without Docker: the
# same script over the locally built binary, then this file's runtime stage (from `FROM
# scratch` on) with buildah. docs/image.md has the measured sizes.

ARG RUST_IMAGE=rust:1.95-bookworm

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# The whole workspace: cargo needs every member's manifest and the declared test and bench
# targets to load it, even though only the controller binary is built.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ccm-issuer \
 && scripts/image-rootfs.sh target/release/ccm-issuer /rootfs

# The runtime stage. scripts/image.sh builds exactly these lines, with the COPY below taking
# the root file system from its build context instead of the builder stage.
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
