#!/usr/bin/env bash
# Round trip of kernel output through the PCI 16550 UART.
#
#   scripts/uart-roundtrip.sh [--keep] [--default-run] [--release] [runner options] [bootargs]
#
# Bootargs default to test=uart; --default-run boots with none (the full default run).
# --keep leaves the vty and UART captures in /tmp/uart-roundtrip.*.
#
# Boots the kernel with `cargo run -- --serial-log FILE ...`, which puts the UART on its own
# file chardev while the hypervisor vty stays on stdout, then checks that every byte the kernel
# printed on the vty from the UART bring-up line ("uart: 16550 ...") through its exit line
# ("hashkernel: exit status N") arrived in FILE, byte for byte and nothing else. Lines printed
# before the UART came up exist only on the vty and are not compared. Both consoles get CRLF
# line ends from the kernel (console.rs turns '\n' into "\r\n" for both), so the comparison is
# on raw bytes; the script also checks that FILE has no bare LF.
#
# Exit status: 0 when the kernel run succeeded and the copies are identical, 1 otherwise.
# Examples:  scripts/uart-roundtrip.sh
#            scripts/uart-roundtrip.sh --firmware slof
#            scripts/uart-roundtrip.sh --default-run      (all self-checks, ~300 lines)
set -uo pipefail
cd "$(dirname "$0")/.."

KEEP=0 DEFAULT_RUN=0
ARGS=() BOOTARGS=() CARGO_FLAGS=()
while (($#)); do
    case "$1" in
        --keep) KEEP=1 ;;
        --default-run) DEFAULT_RUN=1 ;;
        --release) CARGO_FLAGS=(--release) ;;
        --serial-log*|--no-uart|--uart-stdio|--gdb*) echo "uart-roundtrip: $1 cannot be used here" >&2; exit 1 ;;
        --smp|--mem|--cpu|--firmware|--accel|--timeout|--qemu-arg) ARGS+=("$1" "${2:?$1 needs a value}"); shift ;;
        -*) ARGS+=("$1") ;;
        *) BOOTARGS+=("$1") ;;
    esac
    shift
done
((${#BOOTARGS[@]} || DEFAULT_RUN)) || BOOTARGS=(test=uart)
ARGS+=("${BOOTARGS[@]}")

say() { echo "uart-roundtrip: $*"; }
fail() { say "FAIL: $*"; exit 1; }

TMP=$(mktemp -d /tmp/uart-roundtrip.XXXXXX)
if ((KEEP)); then say "keeping files in $TMP"; else trap 'rm -rf "$TMP"' EXIT; fi
UART=$TMP/uart.log VTY=$TMP/vty.log

cargo build -q "${CARGO_FLAGS[@]}" 2>"$TMP/build.err" || { cat "$TMP/build.err" >&2; fail "cargo build failed"; }
cargo run -q "${CARGO_FLAGS[@]}" -- --serial-log "$UART" "${ARGS[@]}" >"$VTY" 2>"$TMP/run.err" </dev/null
rc=$?
say "kernel run: ${ARGS[*]:-(default run)} -> exit $rc ($(tail -1 "$TMP/run.err"))"

[[ -s $UART ]] || fail "the UART log is empty: the UART never came up ($(grep -a -m1 '^uart:' "$VTY" | tr -d '\r' || echo 'no uart: line on the vty'))"
first=$(head -n1 "$UART")
[[ $first == "uart: 16550 "* ]] || fail "the UART log does not start with the bring-up line: '${first%$'\r'}'"
bad=$(LC_ALL=C awk '!/\r$/ {print NR": "$0; exit}' "$UART")
[[ -z $bad ]] || fail "the UART log has a line without CRLF (line $bad)"
[[ $(tail -c 1 "$UART" | od -An -c | tr -d ' ') == '\n' ]] || fail "the UART log does not end with a line end"

# The vty section to compare: from the bring-up line to the end of the (last) exit line.
start=$(LC_ALL=C grep -a -b -F -x -m1 -- "$first" "$VTY" | cut -d: -f1)
[[ -n $start ]] || fail "the bring-up line is not on the vty: '${first%$'\r'}'"
exitline=$(LC_ALL=C grep -a -b 'hashkernel: exit status [0-9]' "$VTY" | tail -1)
[[ -n $exitline ]] || fail "no 'hashkernel: exit status' line on the vty"
eoff=${exitline%%:*}
etext=${exitline#*:}
end=$((eoff + ${#etext} + 1))
((end > start)) || fail "the exit line comes before the bring-up line on the vty"
tail -c +$((start + 1)) "$VTY" | head -c $((end - start)) >"$TMP/vty.cut"

before=$(head -c "$start" "$VTY" | grep -a -c '')
nlines=$(grep -a -c '' "$UART")
nbytes=$(stat -c %s "$UART")
if cmp -s "$TMP/vty.cut" "$UART"; then
    ((rc == 0)) && verdict=OK || verdict=identical
    say "$verdict: $nlines lines ($nbytes bytes, CRLF) from UART bring-up to exit are identical on the vty and the UART; $before earlier lines (firmware, banner) were vty-only"
    ((rc == 0)) || fail "output identical, but the kernel run failed (exit $rc)"
    exit 0
fi
# Show where they part.
n=$(cmp "$TMP/vty.cut" "$UART" 2>&1 | head -1)
say "vty section: $(stat -c %s "$TMP/vty.cut") bytes, $(grep -a -c '' "$TMP/vty.cut") lines; UART: $nbytes bytes, $nlines lines"
say "first difference: $n"
diff <(tr -d '\r' <"$TMP/vty.cut") <(tr -d '\r' <"$UART") | head -20 | sed 's/^/    /'
cmp -s <(tr -d '\r' <"$TMP/vty.cut") <(tr -d '\r' <"$UART") && say "(the lines match once CRs are removed: a CR/LF difference)"
fail "the UART did not get the kernel's output byte for byte"
