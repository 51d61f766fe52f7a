#!/usr/bin/env bash
# The one command that runs every test on a fresh machine (README, .ci/run):
# installs the pinned toolchain and its wasm target, makes sure a Docker
# engine answers (starting Debian's docker.io with safe flags if none does,
# and stopping it again at the end if this script started it), builds the
# test images (cached by recipe hash), then runs format and lint checks on
# both workspaces and the whole test suite.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

step() { printf '\n==> %s\n' "$*" >&2; }
started=$(date +%s)

step "toolchain (rust-toolchain.toml: 1.95.0 + wasm32-wasip2)"
# RUSTUP_AUTO_INSTALL=0 machines install nothing implicitly.
rustup toolchain install --no-self-update
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
if ! cargo nextest --version >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

step "docker engine"
tests/engine.sh ensure
trap 'tests/engine.sh stop || true' EXIT

step "test images (cached by recipe hash)"
for image in fixture openclaw hermes; do
    tests/images/build.sh "$image" >/dev/null
done

step "format"
cargo fmt --all -- --check
cargo fmt --manifest-path plugins/Cargo.toml --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --manifest-path plugins/Cargo.toml --workspace --all-targets --target wasm32-wasip2 --locked -- -D warnings

step "guest unit tests (pure plugin logic, native)"
host_triple=$(rustc -vV | sed -n 's/^host: //p')
cargo test --manifest-path plugins/Cargo.toml --locked --target "$host_triple" -p runner-plugin-sdk -p openclaw -p hermes

step "host and e2e tests"
cargo nextest run --workspace --locked --no-fail-fast

step "done in $(( $(date +%s) - started )) s"
