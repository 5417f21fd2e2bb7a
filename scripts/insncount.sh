#!/usr/bin/env bash
# Builds and tests tools/insncount, the QEMU TCG plugin that counts guest instructions per
# exception window (vector entry through rfid). Needs only what scripts/setup.sh installs.
#
#   scripts/insncount.sh build     build if the sources changed; print the .so path (stdout)
#   scripts/insncount.sh path      the .so path, built if missing or stale (same as build)
#   scripts/insncount.sh test      the plugin's host unit tests
#   scripts/insncount.sh summary FILE [VECTOR]
#                                  per (tag, vector): windows, min, mode, max from an output file
#
# The crate is a host cdylib; the repository's .cargo/config.toml forces the ppc64 kernel
# target on anything built with the repository as working directory, so cargo runs from /tmp.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRATE=$ROOT/tools/insncount
TARGET_DIR=$ROOT/target/insncount
SO=$TARGET_DIR/release/libinsncount.so
TOOLCHAIN=/opt/ppc64-kernel-toolchain/bin

die() { echo "insncount.sh: $*" >&2; exit 1; }

cargo_host() {
    [[ -x $TOOLCHAIN/cargo && -x $TOOLCHAIN/rustc ]] || die "no toolchain in $TOOLCHAIN: run scripts/setup.sh"
    # Debian's rustc through setup.sh's wrapper, whatever else is in PATH (rustup, ...).
    (cd "${TMPDIR:-/tmp}" && PATH=$TOOLCHAIN:$PATH RUSTC=$TOOLCHAIN/rustc \
        timeout 900 "$TOOLCHAIN/cargo" "$@" --offline --manifest-path "$CRATE/Cargo.toml" --target-dir "$TARGET_DIR")
}

stale() {
    [[ -f $SO ]] || return 0
    [[ -n $(find "$CRATE/Cargo.toml" "$CRATE/Cargo.lock" "$CRATE/src" -newer "$SO" -print -quit 2>/dev/null) ]]
}

case "${1:-build}" in
    build|path)
        if stale; then
            cargo_host build --release -q >&2 || die "cargo build failed"
            touch "$SO"
        fi
        echo "$SO"
        ;;
    test)
        cargo_host test --release
        ;;
    summary)
        f=${2:?usage: scripts/insncount.sh summary FILE [VECTOR]}
        [[ -f $f ]] || die "no such file: $f"
        awk -v want="${3:-}" '
            $1 == "S" && (want == "" || $3 == want) { key = $2 " " $3; n[key] = $4; lo[key] = $5; hi[key] = $6; keys[++k] = key }
            $1 == "H" && (want == "" || $3 == want) { key = $2 " " $3; if ($5 > best[key]) { best[key] = $5; mode[key] = $4 } }
            END {
                printf "%-6s %-7s %9s %7s %7s %7s\n", "tag", "vector", "windows", "min", "mode", "max"
                for (i = 1; i <= k; i++) { split(keys[i], a, " "); printf "%-6s %-7s %9d %7d %7d %7d\n", a[1], a[2], n[keys[i]], lo[keys[i]], mode[keys[i]], hi[keys[i]] }
            }' "$f"
        ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (build, path, test, summary FILE [VECTOR])" ;;
esac
