#!/usr/bin/env bash
# The README's first command: everything a fresh machine needs for `runner demo`
# (pinned toolchain + wasm target, a Docker engine started with safe flags if
# none answers, the small fixture image), then the demo itself: a fixture
# sandbox broken the way a container restart breaks it, and
# `runner status` → `runner recover` → `runner status`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

echo "==> toolchain" >&2
rustup toolchain install --no-self-update >&2
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2 >&2

echo "==> docker engine" >&2
tests/engine.sh ensure >&2
trap 'tests/engine.sh stop >&2 || true' EXIT

echo "==> fixture image" >&2
image=$(tests/images/build.sh fixture | tail -n 1)

echo "==> building runner (release)" >&2
cargo build --release --locked -p runner >&2

echo "==> demo" >&2
target/release/runner demo --image "$image" "$@"
