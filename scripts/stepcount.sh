#!/usr/bin/env bash
# Instruction count of one exception window by single-stepping through QEMU's gdb stub: the
# independent cross-check of tools/insncount (the TCG plugin).
#
#   scripts/stepcount.sh [options] ELF [-- runner options and bootargs for scripts/run.sh]
#
# Boots ELF with scripts/run.sh --gdb, runs it to the trigger (every --after in order, then the
# --at location, normally an exception vector's first instruction), then steps that vCPU with
# raw remote `s` packets (not gdb's stepi, which steps over short ldarx..stdcx. sequences as one)
# until and including the rfid/hrfid/rfscv at the same nesting level. QEMU masks interrupts
# while single-stepping, so the count is the uninterrupted path; `sc 1` is one step.
# Last line: `STEPCOUNT N sc=K nested_insns=M max_depth=D`.
#
# Examples (release kernel, `cargo build --release`; K=target/powerpc64-none/release/hashkernel).
# bench=hash brackets each measured access with a call to the marker stub of its tag
# (count_marks + 8 * tag, src/run/bench.rs); with AIL=3 the kernel's vectors are at
# 0xc000000000004000 + offset:
#   M=0x$(nm $K | awk '$3 == "count_marks" {print $1}')
#   primary insert (tag 1): scripts/stepcount.sh --after "*$(printf %#x $((M + 8)))" --at '*0xc000000000004300' $K -- bench=hash
#   segment miss (tag 7):   scripts/stepcount.sh --after "*$(printf %#x $((M + 56)))" --at '*0xc000000000004380' $K -- bench=hash
# scripts/bench.sh runs these (and more) and compares them with the plugin's counts.
set -uo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/stepcount.sh [options] ELF [-- runner options and bootargs]
       scripts/stepcount.sh [options] --raw ELF -- QEMU-COMMAND...

options:
  --after LOC[@N]      first run until LOC is hit the Nth time (default 1); repeatable, in order
  --at LOC[@N]         the window's first instruction, its Nth hit after the --after steps
                       (default *0x300); only on the vCPU that hit the last --after
  --any-cpu            take the --at hit on any vCPU
  --trace              print every stepped PC (symbolised) and a per-function split
  --vbase ADDR         vector base for nesting detection (repeatable; default 0x0 and
                       0xc000000000004000)
  --endian big|little  instruction/register byte order (default: the ELF's)
  --alias SYM|none     symbolise PCs below SYM's size as SYM+PC (real-mode copy of the vectors;
                       default: vectors_block..vectors_block_end if the ELF has them)
  --port N             gdb port (default: a free one in 41000-41999)
  --timeout SECONDS    limit for the whole session (default 300)
  --max-steps N        give up after N steps (default 200000)
  --raw                run the QEMU command line given after -- as it is (plus -gdb ... -S)
                       instead of scripts/run.sh (e.g. another kernel with its own options)
  -h, --help           this text

LOC: a symbol exactly as `readelf -sW -C ELF` prints it (its local entry point is used), or *ADDR / 0xADDR.
Everything after `--` goes to scripts/run.sh (runner options such as --smp, and bootargs),
or with --raw is the whole QEMU command.
USAGE
}

die() { echo "stepcount: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
AFTERS=() AT='*0x300' ANY=0 TRACE=0 VBASES=() ENDIAN="" ALIAS=auto PORT="" LIMIT=300 MAXSTEPS=200000
ELF="" RUNARGS=() RAW=0
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --after) AFTERS+=("${2:?--after needs LOC}"); shift ;;
        --at) AT=${2:?--at needs LOC}; shift ;;
        --any-cpu) ANY=1 ;;
        --trace) TRACE=1 ;;
        --vbase) VBASES+=("${2:?}"); shift ;;
        --endian) ENDIAN=${2:?}; shift ;;
        --alias) ALIAS=${2:?}; shift ;;
        --port) PORT=${2:?}; shift ;;
        --timeout) LIMIT=${2:?}; shift ;;
        --max-steps) MAXSTEPS=${2:?}; shift ;;
        --raw) RAW=1 ;;
        --) shift; RUNARGS=("$@"); break ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [[ -z $ELF ]] || die "two ELF files given ('$ELF', '$1')"; ELF=$1 ;;
    esac
    shift
done
[[ -n $ELF && -f $ELF ]] || die "no kernel ELF given (see --help)"
head -c 4 "$ELF" | grep -q ELF || die "$ELF is not an ELF file"
[[ $LIMIT =~ ^[0-9]+$ && $LIMIT -gt 0 ]] || die "--timeout must be a positive number of seconds"
[[ $MAXSTEPS =~ ^[0-9]+$ ]] || die "--max-steps must be a number"
command -v gdb-multiarch >/dev/null || die "gdb-multiarch not found: run scripts/setup.sh"
if [[ -z $ENDIAN ]]; then
    case $(od -An -tu1 -j5 -N1 "$ELF" | tr -d ' ') in 1) ENDIAN=little ;; *) ENDIAN=big ;; esac
fi
case $ENDIAN in big|little) ;; *) die "--endian must be big or little" ;; esac
((${#VBASES[@]})) || VBASES=(0x0 0xc000000000004000)

SYMS=$(mktemp /tmp/stepcount-syms.XXXXXX)
LOG=$(mktemp /tmp/stepcount-qemu.XXXXXX)
GDBLOG=$(mktemp /tmp/stepcount-gdb.XXXXXX)
RUNNER_PID=""
cleanup() {
    # The runner was started in its own session: its process group is QEMU and run.sh.
    [[ -n $RUNNER_PID ]] && kill -TERM -- "-$RUNNER_PID" 2>/dev/null
    rm -f "$SYMS" "$LOG" "$GDBLOG"
}
trap cleanup EXIT
# "ADDR|LOCALENTRY|NAME" per symbol. An ELFv2 function called from its own module enters at
# its local entry point (past the TOC setup), so a breakpoint on the symbol's value would
# never be hit: LOCALENTRY is added.
readelf -sW -C "$ELF" 2>/dev/null | sed -nE \
    's/^ *[0-9]+: ([0-9a-f]+) +[0-9]+ +[A-Z_]+ +[A-Z_]+ +[A-Z_]+( +\[<localentry>: ([0-9]+)\])? +[A-Z0-9]+ +(.*)$/\1|\3|\4/p' >"$SYMS"
sym_addr() { # NAME -> 0xADDR (local entry), empty if none, several lines if ambiguous
    awk -F'|' -v s="$1" '$3 == s { printf "0x%s %s\n", $1, ($2 == "" ? 0 : $2) }' "$SYMS" | sort -u \
        | while read -r a le; do printf '0x%x\n' $((a + le)); done
}

LABELS=""
# LOC[@N] -> "ADDR@N".
resolve() {
    local spec=$1 loc n=1 addr
    loc=${spec%@*}
    [[ $spec == *@* ]] && n=${spec##*@}
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad hit count in '$spec'"
    if [[ $loc =~ ^\*?(0x[0-9a-fA-F]+|[0-9]+)$ ]]; then
        addr=$(printf '0x%x' "${BASH_REMATCH[1]}")
    else
        local hits
        hits=$(sym_addr "$loc")
        [[ -n $hits ]] || die "no symbol '$loc' in $ELF (readelf -sW -C)"
        (($(wc -l <<<"$hits") == 1)) || die "symbol '$loc' is ambiguous: $(echo $hits)"
        addr=$hits
    fi
    echo "$addr@$n"
}
AFTER_SPECS=""
for a in "${AFTERS[@]}"; do r=$(resolve "$a") || exit 1; AFTER_SPECS+="$r "; done
AT_SPEC=$(resolve "$AT") || exit 1
# resolve ran in subshells: collect the labels again here.
for a in "${AFTERS[@]}" "$AT"; do
    loc=${a%@*}
    [[ $loc =~ ^\*?(0x[0-9a-fA-F]+|[0-9]+)$ ]] && continue
    LABELS+="$(sym_addr "$loc")=$loc"$'\x1f'
done

ALIAS_SPEC=""
if [[ $ALIAS == auto ]]; then
    b=$(sym_addr vectors_block | head -1) e=$(sym_addr vectors_block_end | head -1)
    [[ -n $b && -n $e ]] && ALIAS_SPEC="$b $((e - b))"
elif [[ $ALIAS != none ]]; then
    b=$(sym_addr "$ALIAS" | head -1) e=$(sym_addr "${ALIAS}_end" | head -1)
    [[ -n $b ]] || die "--alias: no symbol '$ALIAS'"
    [[ -n $e ]] || die "--alias: no symbol '${ALIAS}_end' to give the size"
    ALIAS_SPEC="$b $((e - b))"
fi

listening() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
if [[ -z $PORT ]]; then
    for _ in $(seq 50); do
        PORT=$((41000 + RANDOM % 1000))
        listening "$PORT" || break
    done
fi
[[ $PORT =~ ^[0-9]+$ ]] || die "--port must be a number"
listening "$PORT" && die "port $PORT is in use"

# run.sh --gdb turns its own timeout off; this script's limit covers the session.
if ((RAW)); then
    ((${#RUNARGS[@]})) || die "--raw needs the QEMU command after --"
    CMD=("${RUNARGS[@]}" -gdb "tcp:127.0.0.1:$PORT" -S)
else
    CMD=("$ROOT/scripts/run.sh" "$ELF" --gdb="$PORT" "${RUNARGS[@]}")
fi
setsid timeout -k 5 "$LIMIT" "${CMD[@]}" </dev/null >"$LOG" 2>&1 &
RUNNER_PID=$!
for _ in $(seq 100); do
    listening "$PORT" && break
    kill -0 "$RUNNER_PID" 2>/dev/null || { cat "$LOG" >&2; die "the runner ended before QEMU listened on port $PORT"; }
    sleep 0.1
done
listening "$PORT" || { cat "$LOG" >&2; die "QEMU did not listen on port $PORT"; }

echo "stepcount: $ELF ($ENDIAN), runner args: ${RUNARGS[*]:-(none)}; after: ${AFTER_SPECS:-(none)}; at: $AT_SPEC"
SC_ELF=$ELF SC_PORT=$PORT SC_AFTERS=$AFTER_SPECS SC_AT=$AT_SPEC SC_ANY_CPU=$ANY SC_ENDIAN=$ENDIAN \
SC_VBASES="${VBASES[*]}" SC_MAX=$MAXSTEPS SC_TRACE=$TRACE SC_ALIAS=$ALIAS_SPEC SC_LABELS=$LABELS \
    timeout -k 5 "$LIMIT" gdb-multiarch -q -nx -batch -x "$ROOT/scripts/stepcount.py" >"$GDBLOG" 2>&1
rc=$?
if ((rc != 0)); then
    cat "$GDBLOG"
    echo "stepcount: failed (gdb status $rc); the guest's console:" >&2
    tail -20 "$LOG" >&2
    exit 1
fi
# gdb's own stop notices ("Thread 1 hit Breakpoint ...") are noise here.
grep -E '^(stepcount:|STEPCOUNT| )' "$GDBLOG"
exit 0
