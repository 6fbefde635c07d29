#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then formatting, lints and
# every test. Exits non-zero on any failure. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

require_cargo
# protoc builds containerd-client; containerd, runc and busybox-static run the real
# container test; prometheus provides promtool for the exposition check; iproute2 and
# iptables cut an agent's network inside a network namespace (the fault matrix).
apt_install protobuf-compiler containerd runc busybox-static prometheus iproute2 iptables
require_kubectl
pip_install kubernetes-validate kubernetes-validate
# checkov scans the rendered deploy manifests; pinned, and in its own venv (it pins dozens of
# dependencies that a global install would downgrade).
venv_tool checkov checkov==3.3.30
# schemathesis checks the REST API against its OpenAPI document; pinned, in its own venv too.
venv_tool st schemathesis==4.32.5

# Tests that need an external tool fail (instead of skipping) when it is missing.
export AISTOR_REQUIRE_TOOLS=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log "checkov: the rendered deploy manifests"
hack/checkov.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked

log "schemathesis: the REST API against coordinator/openapi.json"
cargo build --bin aistor-coordinator --locked
hack/schemathesis.sh
