#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (metadata in runner/Cargo.toml) and prints its path:
# target/debian/drillbook_<version>-1_<arch>.deb.
#   scripts/package.sh            # release build (what ships)
#   scripts/package.sh --dev      # from the debug binary already built (the package test:
#                                 # same metadata and assets, a bigger binary)
#   scripts/package.sh --tools    # only install cargo-deb (scripts/test-deps.sh does)
# Man pages (clap_mangen) and shell completions (clap_complete) come from the binary itself,
# staged in .package/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

CARGO_DEB_VERSION=3.7.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "package: installing cargo-deb $CARGO_DEB_VERSION (crates.io)" >&2
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
if [[ "${1:-}" == "--tools" ]]; then exit 0; fi

target="${CARGO_TARGET_DIR:-$repo/target}"
fast=()
stage="$repo/.package"
rm -rf "$stage" && mkdir -p "$stage/completions"
if [[ "${1:-}" == "--dev" ]]; then
  bin="$target/debug/drillbook"
  for b in "$bin" "$target/debug/drillbook-qdrant-engine"; do
    [[ -x "$b" ]] || { echo "package: no binary at $b (cargo build --workspace first)" >&2; exit 1; }
  done
  # cargo-deb packages release builds: give it the debug binaries where it looks for them, in a
  # target folder of its own (the real one is left alone).
  mkdir -p "$stage/target/release"
  cp "$bin" "$target/debug/drillbook-qdrant-engine" "$stage/target/release/"
  deb_target="$stage/target"
  fast=(--fast)
else
  # The whole workspace, as every other build here (a -p build unifies features differently
  # and would rebuild the dependencies).
  cargo build --release --locked >&2
  bin="$target/release/drillbook"
  deb_target="$target"
fi

"$bin" manpages "$stage/man"
"$bin" completions bash >"$stage/completions/drillbook.bash"
"$bin" completions zsh >"$stage/completions/_drillbook"
"$bin" completions fish >"$stage/completions/drillbook.fish"

mkdir -p "$repo/target/debian"
CARGO_TARGET_DIR="$deb_target" cargo deb --no-build -p drillbook "${fast[@]}" --output "$repo/target/debian/" "${@:2}" >&2
ls -t "$repo"/target/debian/drillbook_*.deb | head -n1
