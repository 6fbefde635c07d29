# syntax=docker/dockerfile:1
# The aistor node agent. Build from the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t aistor/agent:0.1.0 .

FROM rust:1.95-bookworm AS build
# protoc: the containerd-client crate compiles containerd's .proto files in its build script.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole workspace: cargo needs every member's manifest, and the generated gRPC code is checked in
# (only containerd-client needs protoc, installed above). target/ and .git are kept out by
# agent.Dockerfile.dockerignore.
COPY . .
# Cache mounts keep the registry and build artefacts between builds without putting them in a layer;
# the binary is copied out of the cached target directory so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p aistor-agent \
 && install -D target/release/aistor-agent /out/aistor-agent

# glibc runtime matching the bookworm builder; no shell, no package manager.
# Plain (root) image on purpose: the agent runs as uid 0 to reach the root-only containerd socket,
# with every capability dropped (see deploy/base/agent-daemonset.yaml).
FROM gcr.io/distroless/cc-debian12
COPY --from=build /out/aistor-agent /usr/local/bin/aistor-agent
ENTRYPOINT ["/usr/local/bin/aistor-agent"]
