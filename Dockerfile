# dtc's container image: a static binary on an empty base.
#
#   docker build -t dtc:0.1 .
#
# The build stage needs network access (base image and crates); the final
# stage holds only /dtc, /etc/passwd and /etc/group (user 65532), the default
# config /etc/dtc/dtc.toml, and the journal directory /var/lib/dtc. No shell,
# no libc, no CA certificates. docker/check-image.sh builds the same final
# stage from a locally built binary (docker/Dockerfile.prebuilt).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# glibc, linked statically: the binary runs on `scratch`.
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu --bin dtc \
 && mkdir -p /out/journal \
 && cp target/x86_64-unknown-linux-gnu/release/dtc /out/dtc \
 && strip /out/dtc

# ---- final stage (kept identical in docker/Dockerfile.prebuilt) ----
FROM scratch
COPY --from=build /out/dtc /dtc
COPY docker/etc/ /etc/
COPY --from=build --chown=65532:65532 /out/journal/ /var/lib/dtc/
USER 65532:65532
EXPOSE 8000 9901
ENTRYPOINT ["/dtc"]
CMD ["run", "--config", "/etc/dtc/dtc.toml"]
