#!/usr/bin/env bash
# Builds thinktree-llm's library tests for aarch64 (Linux) and runs them under qemu: the
# NEON kernel variant against the scalar reference, bit for bit, plus the rest of the
# crate's unit tests. No ARM hardware needed; qemu's timing says nothing about speed.
#
#   bash scripts/test-aarch64.sh            # installs qemu-user and the cross linker via apt-get
#   bash scripts/test-aarch64.sh kernels    # a test filter
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    sudo_cmd=""
    if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get install -y --no-install-recommends \
        qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
# The workspace's `-C target-cpu=native` names the host's CPU: the cross build targets
# generic aarch64 instead (with --target, RUSTFLAGS reaches only the target's crates).
# Warnings are errors, as in the native clippy run: code only aarch64 compiles is linted
# here.
export RUSTFLAGS="-C target-cpu=generic -D warnings"
cargo test -p thinktree-llm --lib --target aarch64-unknown-linux-gnu \
    --target-dir target/aarch64 -- "$@"
