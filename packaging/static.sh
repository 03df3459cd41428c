#!/usr/bin/env bash
# Builds the statically linked release binary: glibc linked in (+crt-static), no shared library
# needed at run time, so it runs on an empty base image (Dockerfile) or in an empty chroot.
#   packaging/static.sh            → target/x86_64-unknown-linux-gnu/release/clarion
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# --target keeps RUSTFLAGS off the build scripts (they run on the host) and the result apart
# from the ordinary build in target/release.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
    --target x86_64-unknown-linux-gnu --bin clarion
echo "${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/clarion"
