# syntax=docker/dockerfile:1
# The aistor coordinator, with aistorctl alongside it (handy for `kubectl exec ... aistorctl`).
# Build from the repository root:
#   docker build -f deploy/docker/coordinator.Dockerfile -t aistor/coordinator:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace: cargo needs every member's manifest, and the generated gRPC code is checked in
# (no protoc needed). target/ and .git are kept out by coordinator.Dockerfile.dockerignore.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p aistor-coordinator --bins \
 && install -D target/release/aistor-coordinator /out/aistor-coordinator \
 && install -D target/release/aistorctl /out/aistorctl

# :nonroot runs as uid/gid 65532, the same uid the Deployment pins with runAsNonRoot.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/aistor-coordinator /out/aistorctl /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/aistor-coordinator"]
