#!/usr/bin/env bash
# A tested gdb session against the kernel (CI-safe: no TTY needed, bounded in time, QEMU is
# always killed).
#
#   scripts/gdb-test.sh [--release] [--firmware vof|slof | --machine powernv] [--keep]
#                       [--timeout SECONDS]
#
# 1. builds the kernel and boots it with `cargo run -- --gdb=PORT --smp 2
#    test=hash_page::first_touch` on a free port, in the background;
# 2. runs the attach command the runner prints (scripts/gdb.sh ELF PORT) in batch mode:
#    `break-hash-fault vmalloc` (do_hash_fault, the 0x300 entry's handler, stopping on the
#    first vmalloc (0xd...) fault), then `bt`, `p/x $dar`, `pte $dar`, `excframe`, `hashstats`,
#    `info threads`, `slb`, and `continue` to the end of the run;
# 3. checks the transcript: the backtrace goes do_hash_fault <- hash_fault_call (the assembly
#    entry, unwound through its hash frame) <- the interrupted code in vmalloc <- ... <- kmain,
#    DAR is the faulting vmalloc address (= the hash frame's DAR), the frame's NIP is the
#    interrupted instruction of the backtrace, the PTE walk decodes a PRESENT page, both vCPUs
#    are gdb threads, and the kernel then exits cleanly (gdb: "exited normally"; runner: exit
#    status 0);
# 4. a third session boots with trace=all, stops in the same place and runs `trace-dump`: the
#    rings of both CPUs, readable by scripts/trace.py, CPU 0's ending inside that very 0x300;
# 5. a second session tests the real-mode recipe: `hk-realmode`, `break *_start` stops at
#    physical 0x400000 with MSR[SF|IR|DR] = 0, `break early_main` stops there (called from
#    _start), then `hk-virtual` + `break hashkernel::kmain::kmain` stops with IR|DR on, and the
#    run again ends cleanly. On powernv (skiboot runs _start in place at 0x20010000 and the
#    image copies itself to 0x400000) the stops are `*opal_relocated`, the first instruction
#    of the copy, and `early_main_opal`, called from it, both with MSR[HV] and IR = DR = 0.
# powernv runs with one vCPU: skiboot boots the kernel on whichever thread wins its race, and
# QEMU 7.2's gdb stub reads SPRs (DAR, ...) of the first vCPU only (the SPR numbering of its
# target description is filled in for that one: "remote failure reply 'E14'" on the others).
# Exit status 0 when everything is there, 1 otherwise (the transcript is printed either way).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PROFILE=() FW=vof KEEP=0 TMO=120 MACH=pseries NCPU=2
while (($#)); do
    case "$1" in
        --release) PROFILE=(--release) ;;
        --firmware) FW=${2:?}; shift ;;
        --firmware=*) FW=${1#*=} ;;
        --machine) MACH=${2:?}; shift ;;
        --machine=*) MACH=${1#*=} ;;
        --keep) KEEP=1 ;;
        --timeout) TMO=${2:?}; shift ;;
        --timeout=*) TMO=${1#*=} ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gdb-test: unknown argument '$1'" >&2; exit 1 ;;
    esac
    shift
done
[[ $MACH == powernv ]] && NCPU=1

say() { echo "gdb-test: $*"; }
TMP=$(mktemp -d /tmp/gdb-test.XXXXXX)
QPID=""

cleanup() {
    stop_qemu   # the runner runs in its own session: its whole process group goes
    if ((KEEP)); then say "files kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v gdb-multiarch >/dev/null || { say "FAIL: gdb-multiarch not installed (scripts/setup.sh)"; exit 1; }
cargo build -q "${PROFILE[@]}" 2>"$TMP/build.err" || { cat "$TMP/build.err"; say "FAIL: cargo build"; exit 1; }

listening() { # port -> 0 if something listens on it (no connection attempt: QEMU's stub takes one client)
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

stop_qemu() {
    [[ -n $QPID ]] || return 0
    kill -TERM -- "-$QPID" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QPID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$QPID" 2>/dev/null
    QPID=""
}

start_qemu() { # port qemu-log bootargs...
    local port=$1 log=$2
    shift 2
    # setsid: own process group, so cleanup can kill cargo, run.sh, tee and QEMU together.
    local -a mopt=(--firmware "$FW")
    [[ $MACH == powernv ]] && mopt=(--machine powernv)
    setsid timeout -k 5 "$TMO" cargo run -q "${PROFILE[@]}" -- --gdb="$port" "${mopt[@]}" --smp "$NCPU" \
        "$@" </dev/null >"$log" 2>&1 &
    QPID=$!
    for _ in $(seq 1 150); do
        listening "$port" && return 0
        kill -0 "$QPID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# session NAME BOOTARG -- gdb args...: boots QEMU with a gdb stub on a free port, attaches with
# the command the runner prints, runs gdb in batch mode; leaves $TMP/NAME.{qemu,gdb}.log and
# sets GRC/QRC (gdb and runner exit status).
session() {
    local name=$1 bootarg=$2 qlog=$TMP/$1.qemu.log glog=$TMP/$1.gdb.log port="" p try attach
    shift 3
    for try in 1 2 3 4 5; do
        p=$((20000 + RANDOM % 20000))
        listening "$p" && continue
        if start_qemu "$p" "$qlog" "$bootarg"; then port=$p; break; fi
        say "QEMU did not come up on port $p (try $try): $(tail -1 "$qlog")"
        stop_qemu
    done
    if [[ -z $port ]]; then cat "$qlog"; say "FAIL: could not start QEMU with a gdb stub"; exit 1; fi
    # The runner prints the exact attach command; use it as printed.
    attach=$(grep -A1 'QEMU waits for gdb on port' "$qlog" | tail -1 | sed 's/^ *//')
    local -a argv
    read -r -a argv <<<"$attach"
    if [[ ${argv[0]:-} != scripts/gdb.sh || ${argv[2]:-} != "$port" || ! -f ${argv[1]:-/nonexistent} ]]; then
        cat "$qlog"; say "FAIL: the runner did not print 'scripts/gdb.sh ELF $port' (got: '$attach')"; exit 1
    fi
    say "[$name] QEMU ($( [[ $MACH == powernv ]] && echo powernv/skiboot || echo "firmware $FW"), $NCPU vCPU(s), $bootarg) waits on port $port; attaching with: $attach"
    TERM=dumb timeout -k 5 "$TMO" "${argv[@]}" -batch -ex 'set style enabled off' -ex 'set width 0' \
        "$@" </dev/null >"$glog" 2>&1
    GRC=$?
    # The kernel powers off after its test; give the runner a moment to report.
    for _ in $(seq 1 100); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$QPID" 2>/dev/null; then QRC=124; stop_qemu; else wait "$QPID" 2>/dev/null; QRC=$?; QPID=""; fi
    echo "----- [$name] gdb transcript -----"
    cat "$glog"
    echo "----- [$name] kernel console (tail) -----"
    tail -3 "$qlog"
    echo "----------------------------------"
}

ok=1
check() { # description, then a command that must succeed
    local what=$1; shift
    if "$@"; then say "ok: $what"; else say "MISSING: $what"; ok=0; fi
}
has() { grep -a -q -E -- "$1" "$GLOG"; }
section() { awk -v s="@@ $1" '$0 == s {f = 1; next} /^@@ / {f = 0} f' "$GLOG"; }

# ---- session 1: a vmalloc hash fault ---------------------------------------------------------
session fault test=hash_page::first_touch -- \
    -ex 'break-hash-fault vmalloc' \
    -ex 'continue' \
    -ex 'echo @@ bt\n' -ex 'bt' \
    -ex 'echo @@ dar\n' -ex 'p/x $dar' \
    -ex 'echo @@ pte\n' -ex 'pte $dar' \
    -ex 'echo @@ excframe\n' -ex 'excframe' \
    -ex 'echo @@ hashstats\n' -ex 'hashstats' \
    -ex 'echo @@ threads\n' -ex 'info threads' \
    -ex 'echo @@ slb\n' -ex 'slb' \
    -ex 'echo @@ continue\n' -ex 'delete' -ex 'continue'
GLOG=$TMP/fault.gdb.log QLOG=$TMP/fault.qemu.log
check "gdb exited by itself (rc $GRC)" test "$GRC" -eq 0
check "breakpoint hit in do_hash_fault" has '(hit )?Breakpoint [0-9]+, (0x[0-9a-f]+ in )?(do_hash_fault|hashkernel::hash::fault::fast)'
BT=$(section bt)
bt_order() { # each pattern must appear in a later frame than the previous one
    local last=-1 n pat
    for pat in "$@"; do
        n=$(grep -n -E -- "$pat" <<<"$BT" | head -1 | cut -d: -f1)
        [[ -n $n ]] && ((n > last)) || return 1
        last=$n
    done
}
check "backtrace: do_hash_fault <- hash_fault_call <- interrupted vmalloc <- kmain" \
    bt_order '^#0 +(0x[0-9a-f]+ in )?(do_hash_fault|hashkernel::hash::fault::fast)' 'do_hash_fault' ' in hash_fault_(entry|call) ' \
             'hashkernel::mm::vmalloc::vmalloc' 'hashkernel::kmain::kmain'
check "backtrace not cut short" bash -c "! grep -q 'Backtrace stopped' <<<\"\$1\"" _ "$BT"
DAR=$(section dar | grep -o -E '0x[0-9a-f]+' | head -1)
check "DAR is a vmalloc address (p/x \$dar = ${DAR:-none})" bash -c '[[ $1 =~ ^0xd[0-9a-f]{15}$ ]]' _ "$DAR"
NIP=$(section excframe | grep -o -E '^  NIP 0x[0-9a-f]+' | grep -o -E '0x[0-9a-f]+$' | sed 's/^0x0*/0x/')
check "the hash frame's NIP (${NIP:-none}) is the interrupted instruction in the backtrace" \
    bash -c '[[ -n $1 ]] && grep -q -E "^#[0-9]+ +$1 in " <<<"$2"' _ "${NIP:-}" "$BT"
check "PTE of the faulting address decoded" bash -c 'grep -q -E "^$1: PGD .* PTE page" <<<"$2" && grep -q -E "^  PTE 0x[0-9a-f]{16}: PRESENT.*pfn=" <<<"$2"' _ "$DAR" "$(section pte)"
check "exception frame: the hash frame, vector 0x300, the same DAR" bash -c 'grep -q "hash-fault frame .*vector 0x300 (data storage)" <<<"$1" && grep -q "DAR $2" <<<"$1"' _ "$(section excframe)" "$(printf '%#018x' "${DAR:-0}")"
# (powernv has no UART whose mapping faults earlier: the test's first fault may be the first.)
check "hashstats shows fault counters" bash -c 'grep -q -E "^faults +[$2-9]" <<<"$1"' _ "$(section hashstats)" "$( [[ $MACH == powernv ]] && echo 0 || echo 1)"
check "each vCPU is a gdb thread" bash -c '[[ $(grep -c -E "Thread 1\.[0-9]+ \(CPU#" <<<"$1") -eq $2 ]]' _ "$(section threads)" "$NCPU"
check "SLB dump has the vmalloc segment" bash -c 'grep -q -E "0xd0000000080000" <<<"$1"' _ "$(section slb)"
check "kernel ran to a clean exit after continue" has 'exited normally'
check "runner reported success (exit $QRC)" bash -c '[[ $1 -eq 0 ]] && grep -a -q "hashkernel: exit status 0" "$2"' _ "$QRC" "$QLOG"

# ---- session 2: the real-mode entry stub -----------------------------------------------------
if [[ $MACH == powernv ]]; then
# skiboot enters the file in place at its load address (0x20000000) + the file offset of the
# first loadable segment, where _start is; after the copy the kernel runs at its link
# addresses, which real mode takes as physical ones (the top EA bits are ignored): no
# hk-realmode needed there.
ENTRY=$(printf '*0x%x' $((0x20000000 + $(readelf -lW "$(ls -t target/powerpc64-none/*/hashkernel | head -1)" | awk '$1 == "LOAD" {print $2; exit}'))))
session realmode test=boot::device_tree_facts -- \
    -ex "break $ENTRY" -ex 'break *opal_relocated' -ex 'break early_main_opal' \
    -ex 'continue' \
    -ex 'echo @@ entry\n' -ex 'p/x $pc' -ex 'p/x $r5' -ex 'p/x $r8' -ex 'p/x $msr' \
    -ex 'continue' \
    -ex 'echo @@ start\n' -ex 'p/x $pc' -ex 'p/x $msr' \
    -ex 'continue' \
    -ex 'echo @@ early\n' -ex 'bt' -ex 'p/x $msr' \
    -ex 'echo @@ kmain\n' -ex 'delete' -ex 'break hashkernel::kmain::kmain' -ex 'continue' -ex 'p/x $msr' \
    -ex 'echo @@ continue\n' -ex 'delete' -ex 'continue'
GLOG=$TMP/realmode.gdb.log QLOG=$TMP/realmode.qemu.log
check "[realmode] gdb exited by itself (rc $GRC)" test "$GRC" -eq 0
check "[realmode] skiboot enters the file in place (${ENTRY#\*}) with r5 = 0, r8 = OPAL base, MSR[SF|HV] real mode" bash -c 'v=($(grep -o -E "0x[0-9a-f]+$" <<<"$1")); [[ ${#v[@]} -eq 4 && ${v[0]} == "$2" && ${v[1]} == 0x0 && ${v[2]} == 0x30000000 ]] && (( (v[3] & 0x30) == 0 && (v[3] >> 60 & 0xf) == 9 ))' _ "$(section entry)" "${ENTRY#\*}"
check "[realmode] break *opal_relocated stops in the copy (link address 0xc0000000004xxxxx, real mode)" bash -c 'grep -q -E "^\\\$[0-9]+ = 0xc0000000004[0-9a-f]{5}$" <<<"$1" && v=$(grep -o -E "0x[0-9a-f]+$" <<<"$1" | tail -1); [[ -n $v ]] && (( (v & 0x30) == 0 && (v >> 60 & 1) == 1 ))' _ "$(section start)"
check "[realmode] break early_main_opal hits, called from opal_relocated" bash -c 'a=$(grep -n -E "^#[0-9]+ +(0x[0-9a-f]+ in )?hashkernel::arch::ppc64::powernv::early_main_opal " <<<"$1" | head -1 | cut -d: -f1); b=$(grep -n -E "^#[0-9]+ +0xc0000000004[0-9a-f]{5} in opal_relocated" <<<"$1" | head -1 | cut -d: -f1); [[ -n $a && -n $b ]] && ((b > a))' _ "$(section early)"
check "[realmode] break kmain hits with translation on (MSR IR|DR)" bash -c 'grep -q -E "Breakpoint [0-9]+, .*hashkernel::kmain::kmain" <<<"$1" && v=$(grep -o -E "^\\\$[0-9]+ = 0x[0-9a-f]+" <<<"$1" | tail -1 | grep -o -E "0x[0-9a-f]+"); [[ -n $v ]] && (( (v & 0x30) == 0x30 ))' _ "$(section kmain)"
check "[realmode] kernel ran to a clean exit" bash -c 'grep -q "exited normally" "$1" && [[ $2 -eq 0 ]]' _ "$GLOG" "$QRC"
if ((ok)); then say "PASS"; exit 0; fi
say "FAIL"
exit 1
fi
session realmode test=boot::device_tree_facts -- \
    -ex 'hk-realmode' \
    -ex 'break *_start' -ex 'break early_main' \
    -ex 'continue' \
    -ex 'echo @@ start\n' -ex 'p/x $pc' -ex 'p/x $msr' \
    -ex 'continue' \
    -ex 'echo @@ early\n' -ex 'bt' -ex 'p/x $msr' \
    -ex 'echo @@ kmain\n' -ex 'delete' -ex 'hk-virtual' -ex 'break hashkernel::kmain::kmain' -ex 'continue' -ex 'p/x $msr' \
    -ex 'echo @@ continue\n' -ex 'delete' -ex 'continue'
GLOG=$TMP/realmode.gdb.log QLOG=$TMP/realmode.qemu.log
check "[realmode] gdb exited by itself (rc $GRC)" test "$GRC" -eq 0
check "[realmode] break *_start stops at physical 0x400000" bash -c 'grep -q -E "^\\\$[0-9]+ = 0x400000$" <<<"$1"' _ "$(section start)"
check "[realmode] ... in real mode (MSR IR=DR=0)" bash -c 'v=$(grep -o -E "0x[0-9a-f]+$" <<<"$1" | tail -1); [[ -n $v ]] && (( (v & 0x30) == 0 ))' _ "$(section start)"
check "[realmode] break early_main (physical) hits, called from _start" bash -c 'a=$(grep -n -E "^#[0-9]+ +(0x[0-9a-f]+ in )?hashkernel::arch::ppc64::boot::early_main " <<<"$1" | head -1 | cut -d: -f1); b=$(grep -n -E "^#[0-9]+ +0x0*4[0-9a-f]{5} in _start" <<<"$1" | head -1 | cut -d: -f1); [[ -n $a && -n $b ]] && ((b > a))' _ "$(section early)"
check "[realmode] hk-virtual + break kmain hits with translation on (MSR IR|DR)" bash -c 'grep -q -E "Breakpoint [0-9]+, .*hashkernel::kmain::kmain" <<<"$1" && v=$(grep -o -E "^\\\$[0-9]+ = 0x[0-9a-f]+" <<<"$1" | tail -1 | grep -o -E "0x[0-9a-f]+"); [[ -n $v ]] && (( (v & 0x30) == 0x30 ))' _ "$(section kmain)"
check "[realmode] kernel ran to a clean exit" bash -c 'grep -q "exited normally" "$1" && [[ $2 -eq 0 ]]' _ "$GLOG" "$QRC"

# ---- session 3: the event trace, read from the stopped kernel ----------------------------------
session trace "test=hash_page::first_touch trace=all" -- \
    -ex 'break-hash-fault vmalloc' \
    -ex 'continue' \
    -ex 'echo @@ dar\n' -ex 'p/x $dar' \
    -ex 'echo @@ trace\n' -ex 'trace-dump' \
    -ex 'echo @@ continue\n' -ex 'delete' -ex 'continue'
GLOG=$TMP/trace.gdb.log QLOG=$TMP/trace.qemu.log
check "[trace] gdb exited by itself (rc $GRC)" test "$GRC" -eq 0
section trace >"$TMP/trace.dump"
check "[trace] trace-dump printed the rings of both CPUs" bash -c 'grep -q "^trace: dump begin: reason=gdb .*cpus=2" "$1" && grep -q "^trace: cpu 1: " "$1" && grep -q "^trace: dump end: [1-9]" "$1"' _ "$TMP/trace.dump"
check "[trace] scripts/trace.py reads the gdb dump" bash -c 'python3 scripts/trace.py text "$1" >/dev/null' _ "$TMP/trace.dump"
TDAR=$(section dar | grep -o -E '0x[0-9a-f]+' | head -1)
# The fault gdb stopped in is the last exception CPU 0 entered, and it has not returned.
LASTX=$(grep -E '^T0 \+[0-9]+ x[ex] ' "$TMP/trace.dump" | tail -1)
check "[trace] CPU 0's ring ends inside the 0x300 gdb stopped in (DAR ${TDAR:-none}; last: ${LASTX:-none})" \
    bash -c '[[ -n $1 && $2 =~ ^T0\ \+[0-9]+\ xe\ [0-9]+\ 300\ ${1#0x}( |$) ]]' _ "${TDAR:-}" "$LASTX"
check "[trace] kernel ran to a clean exit and dumped its trace" bash -c 'grep -q "exited normally" "$1" && [[ $2 -eq 0 ]] && grep -a -q "^trace: dump end:" "$3"' _ "$GLOG" "$QRC" "$QLOG"

if ((ok)); then say "PASS"; exit 0; fi
say "FAIL"
exit 1
