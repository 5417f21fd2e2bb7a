#!/usr/bin/env bash
# The two timelines that README.md and docs/ARCHITECTURE.md show, regenerated from real runs:
#
#   scripts/trace-svgs.sh [OUTDIR]          (default: docs; CI writes into target/)
#
# 1. `cargo run -- trace=all hash_page=locked`: the 2003 design. The run ends in the deadlock
#    report (exit 1), which holds the dump of every CPU's ring.
# 2. `cargo run -- trace=all trace.stop=irqtest`: the same scenario with the lock-free hash_page
#    (exit 0); recording stops when the scenario ends, so the rings still hold it at exit.
#
# Each run goes through scripts/trace-check.sh (the dump must show the deadlock, resp. the
# fault completing inside the lock hold; the JSON must validate), which writes
# OUTDIR/trace-locked.svg and OUTDIR/trace-lockfree.svg, and the Chrome trace-event JSON next to
# the logs in target/trace/ (open it in https://ui.perfetto.dev or chrome://tracing).
# Exit status 0 when both runs behaved and both images were written.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
OUT=${1:-docs}
mkdir -p "$OUT" || exit 2
say() { echo "trace-svgs: $*"; }
cargo build -q || { say "FAIL: cargo build"; exit 1; }

fail=0
scripts/trace-check.sh deadlock 1 --name trace-locked --svg "$OUT/trace-locked.svg" \
    --title "hash_page=locked (the 2003 design): CPU 0 deadlocks against itself" -- trace=all hash_page=locked || fail=1
scripts/trace-check.sh completes 0 --name trace-lockfree --svg "$OUT/trace-lockfree.svg" \
    --title "hash_page=lockfree (the fix): the same interrupt's hash fault completes inside the lock hold" -- trace=all trace.stop=irqtest || fail=1

if ((fail)); then say "FAIL"; exit 1; fi
say "ok: $OUT/trace-locked.svg $OUT/trace-lockfree.svg (JSON and logs in target/trace/)"
