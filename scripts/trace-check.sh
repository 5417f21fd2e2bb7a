#!/usr/bin/env bash
# Runs the kernel with tracing and checks what its dump shows:
#
#   scripts/trace-check.sh EXPECT EXIT [--name NAME] [--svg FILE] [--title TEXT] -- RUNNER-ARGS...
#
# `cargo run -- RUNNER-ARGS` (runner options and bootargs; give trace=...) must end with exit
# status EXIT; then `scripts/trace.py check --expect EXPECT` reads the dump in its console log
# (EXPECT: deadlock, completes, oops or valid; see scripts/trace.py), writes the Chrome
# trace-event JSON, and `scripts/trace.py validate` reads that file back. The log and the JSON
# stay in target/trace/NAME.{log,json} (NAME: EXPECT by default); --svg also draws the timeline.
# Last line: "trace-check: PASS (...)" or "trace-check: FAIL ...". Exit status 0 on PASS.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
(($# >= 2)) || usage
EXPECT=$1 WANT_RC=$2
shift 2
NAME=$EXPECT SVG="" TITLE=""
while (($#)); do
    case "$1" in
        --name) NAME=${2:?}; shift ;;
        --svg) SVG=${2:?}; shift ;;
        --title) TITLE=${2:?}; shift ;;
        --) shift; break ;;
        *) usage ;;
    esac
    shift
done
WORK=target/trace
mkdir -p "$WORK" || exit 2
LOG=$WORK/$NAME.log JSON=$WORK/$NAME.json
say() { echo "trace-check: $*"; }

say "cargo run -- $* (expect exit $WANT_RC)"
cargo run -q -- "$@" </dev/null >"$LOG" 2>&1
rc=$?
grep -a -E '^(trace: (recording|dump begin|dump end|stopped)|hashkernel: exit status|==+\[ DEADLOCK|Oops:|self-checks:|lock self-check|watchdog \(CPU|result: )' "$LOG" | tr -d '\r' | sed 's/^/  | /'
if ((rc != WANT_RC)); then
    tail -5 "$LOG" | sed 's/^/  | /'
    say "FAIL: exit status $rc, expected $WANT_RC (log $LOG)"; exit 1
fi
args=(check "$LOG" --expect "$EXPECT" --json "$JSON" --elf target/powerpc64-none/debug/hashkernel)
[[ -n $SVG ]] && args+=(--svg "$SVG")
[[ -n $TITLE ]] && args+=(--title "$TITLE")
python3 scripts/trace.py "${args[@]}" || exit 1
deadlock=()
[[ $EXPECT == deadlock ]] && deadlock=(--deadlock-cpu "$(sed -n 's/^trace: dump begin: .*stuck=\([0-9]*\) .*/\1/p' "$LOG" | tr -d '\r' | tail -1)")
python3 scripts/trace.py validate "$JSON" "${deadlock[@]}" | sed 's/^/trace-check: /' || { say "FAIL: $JSON does not validate"; exit 1; }
if [[ -n $SVG ]]; then
    python3 -c 'import sys, xml.etree.ElementTree as E; assert E.parse(sys.argv[1]).getroot().tag.endswith("svg")' "$SVG" \
        || { say "FAIL: $SVG is not well-formed SVG"; exit 1; }
    say "SVG $SVG: $(wc -c <"$SVG") bytes, well-formed"
fi
