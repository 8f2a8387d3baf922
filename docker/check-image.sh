#!/usr/bin/env bash
# Builds Dockerfile's final stage offline with buildah from a static binary
# built here, and prints the image size. Needs: buildah, libc6-dev (libc.a).
#   docker/check-image.sh [TAG]
set -euo pipefail
tag="${1:-dtc:check}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked \
  --manifest-path "$repo/Cargo.toml" --target x86_64-unknown-linux-gnu --bin dtc
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/prebuilt/journal"
cp -r "$repo/docker" "$context/docker"
cp "$target_dir/x86_64-unknown-linux-gnu/release/dtc" "$context/prebuilt/dtc"
strip "$context/prebuilt/dtc"
buildah --storage-driver vfs bud --isolation chroot -q -t "$tag" \
  -f "$context/docker/Dockerfile.prebuilt" "$context"
buildah --storage-driver vfs images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag"
