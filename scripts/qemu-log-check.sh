#!/usr/bin/env bash
# scripts/qemu-log-check.sh run|test [runner options] [bootargs]
#
# Boots the kernel (`cargo run` or `cargo test`) with QEMU's `-d guest_errors,unimp` log in a
# file, then holds that log against what the kernel announced: a test that touches an unbacked
# address on purpose prints `qemu-log-expect: Invalid read at addr 0x..., size N` (one line per
# access) before it does. Every log line must be announced and every announcement must be in
# the log, as many times as announced; QEMU's trailing ", region '...', reason: ..." is not
# compared. Anything else in the log (an invalid access nobody announced, an unimplemented
# register or hypercall) fails the check, as does a failing run.
#
# Prints "qemu-log-check: clean: ..." and exits 0, or lists the differences and exits 1.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
case "${1:-}" in
    run|test) kind=$1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/qemu-log-check.sh run|test [runner options] [bootargs]" >&2; exit 2 ;;
esac

tmp=$(mktemp -d /tmp/qemu-log-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cargo "$kind" -q -- --qemu-arg -d --qemu-arg guest_errors,unimp --qemu-arg -D --qemu-arg "$tmp/qemu.log" "$@" \
    >"$tmp/console" 2>&1 </dev/null
rc=$?
tr -d '\r' <"$tmp/console" >"$tmp/console.txt"
grep -a -E '^(hashkernel: exit status|self-checks: |[0-9]+ passed, [0-9]+ failed$)' "$tmp/console.txt"
if ((rc != 0)); then
    echo "qemu-log-check: FAILED: cargo $kind exited $rc; failures and last console lines:"
    grep -a -E 'FAILED|Oops|panic|DEADLOCK|TIMEOUT' "$tmp/console.txt" | head -n 5 | sed 's/^/  | /'
    tail -n 8 "$tmp/console.txt" | sed 's/^/  | /'
    exit 1
fi
[[ -f $tmp/qemu.log ]] || : >"$tmp/qemu.log"

sed -n 's/^qemu-log-expect: //p' "$tmp/console.txt" | sort >"$tmp/expected"
sed -e 's/, region .*$//' "$tmp/qemu.log" | sort >"$tmp/logged"
unexpected=$(comm -13 "$tmp/expected" "$tmp/logged")
missing=$(comm -23 "$tmp/expected" "$tmp/logged")
nexp=$(wc -l <"$tmp/expected")
nlog=$(wc -l <"$tmp/logged")
if [[ -n $unexpected || -n $missing ]]; then
    echo "qemu-log-check: FAILED: cargo $kind: $nlog line(s) in QEMU's -d guest_errors,unimp log, $nexp announced by the kernel"
    [[ -n $unexpected ]] && sed 's/^/  unexpected: /' <<<"$unexpected"
    [[ -n $missing ]] && sed 's/^/  announced but not logged: /' <<<"$missing"
    exit 1
fi
echo "qemu-log-check: clean: cargo $kind${*:+ $*}: $nlog line(s) in QEMU's -d guest_errors,unimp log, all $nexp announced by the tests that probe unbacked addresses on purpose"
