#!/usr/bin/env bash
# Cross-builds tokio-quiche.linux-arm64-gnu.node (aarch64-unknown-linux-gnu)
# on an x86_64 Debian 12 host with Debian's own packages: rustup cannot fetch
# another target's standard library where only the package mirrors are
# reachable, but Debian ships rustc 1.96 (rustc-web) with an arm64 std as a
# multiarch package. BoringSSL needs the aarch64 gcc/g++ cross compilers and
# CMake; bindgen finds the arm64 headers through the cross gcc.
#   scripts/build-linux-arm64.sh [--install]   (--install: apt-get what it needs; root)
# Writes the addon to the repository root, beside the x64 one. It is not
# used on this host, and `npm test` does not build it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--install" ]; then
  dpkg --add-architecture arm64
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends rustc-web cargo-web libstd-rust-web-dev:arm64 \
    gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross cmake clang libclang-dev
fi
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] || { echo "no arm64 std: run $0 --install"; exit 1; }
# Debian's cargo and rustc ahead of rustup's, for this build only.
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
ln -s /usr/bin/cargo /usr/bin/rustc /usr/bin/rustdoc "$tools/"
out=$(mktemp -d -p "$tools")
PATH="$tools:$PATH" \
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/cross" \
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
  npx napi build --platform --release --target aarch64-unknown-linux-gnu --manifest-path crates/core/Cargo.toml -o "$out"
# Only the addon: the index.js and index.d.ts it regenerates beside it are the committed ones.
cp "$out/tokio-quiche.linux-arm64-gnu.node" .
ls -l tokio-quiche.linux-arm64-gnu.node
