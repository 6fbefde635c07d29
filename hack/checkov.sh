#!/usr/bin/env bash
# checkov's Kubernetes checks on what `kubectl apply -k` would apply: deploy/base and every overlay,
# each rendered with `kubectl kustomize`. Fails on any failed check. A check is skipped only by a
# `checkov.io/skip<N>: CKV_K8S_<id>=<reason>` annotation on the object it concerns, next to the
# manifest it excuses (deploy/README.md lists them); no skip list here.
#   hack/checkov.sh            (hack/test.sh runs it; needs kubectl and checkov on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
for dir in deploy/base deploy/overlays/*/; do
  dir="${dir%/}"
  file="$out/$(echo "$dir" | tr / _).yaml"
  kubectl kustomize "$dir" >"$file"
  # --skip-download: no calls to the Prisma Cloud API (offline, reproducible).
  if ! checkov --file "$file" --framework kubernetes --compact --quiet --skip-download \
      --output cli >"$out/report" 2>"$out/stderr"; then
    status=1
  fi
  summary="$(grep -E '^Passed checks' "$out/report" || true)"
  echo "checkov $dir: ${summary:-no results}"
  # checkov reports nothing, and exits 0, for a file it cannot parse: no summary or no passed
  # check is a failure too.
  if ! [[ "$summary" =~ ^Passed\ checks:\ [1-9] ]]; then
    echo "checkov ran no check on $dir (unparseable rendering?)" >&2
    status=1
  fi
  if [ "$status" -ne 0 ]; then
    cat "$out/report" "$out/stderr" >&2
  fi
done
exit "$status"
