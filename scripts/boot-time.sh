#!/usr/bin/env bash
# Boot timing: runs the (debug) kernel N times through scripts/run.sh and prints, per run and
# as medians, the time from QEMU's start to the kernel banner, to the kernel's exit line, and
# to QEMU's exit. Each output line is timestamped as it arrives (bash $EPOCHREALTIME, no fork).
#
#   scripts/boot-time.sh [-n RUNS] [--release] [runner options] [bootargs]
#   e.g. scripts/boot-time.sh -n 5 --firmware slof
#
# "start" is the line run.sh prints with --print-cmd just before it starts QEMU; "QEMU exit" is
# run.sh's closing line, printed as soon as QEMU has exited. The kernel's own exit status does
# not matter here (a failing self-check still times the boot).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

RUNS=5 PROFILE=debug ARGS=()
while (($#)); do
    case "$1" in
        -n) RUNS=${2:?}; shift ;;
        --release) PROFILE=release ;;
        *) ARGS+=("$1") ;;
    esac
    shift
done
if [[ $PROFILE == release ]]; then cargo build -q --release || exit 1; else cargo build -q || exit 1; fi
ELF=target/powerpc64-none/$PROFILE/hashkernel

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

B=() X=() Q=()
for ((i = 1; i <= RUNS; i++)); do
    res=$(bash scripts/run.sh "$ELF" --print-cmd "${ARGS[@]}" </dev/null 2>&1 | {
        start="" banner="" exitl="" quit=""
        while IFS= read -r line; do
            t=$EPOCHREALTIME
            case "$line" in
                "run.sh: qemu-system-ppc64 "*) start=$t ;;
                hashkernel\ [0-9]*) [[ -z $banner ]] && banner=$t ;;
                *"hashkernel: exit status"*) exitl=$t ;;
                "run.sh: "*) quit=$t ;;
            esac
        done
        awk -v s="$start" -v b="$banner" -v x="$exitl" -v q="$quit" 'BEGIN {
            printf "%s %s %s\n", (b == "" ? "-" : sprintf("%.3f", b - s)),
                                 (x == "" ? "-" : sprintf("%.3f", x - s)),
                                 (q == "" ? "-" : sprintf("%.3f", q - s)) }'
    })
    read -r b x q <<<"$res"
    printf 'run %d: start->banner %ss  start->exit line %ss  start->QEMU exit %ss\n' "$i" "$b" "$x" "$q"
    [[ $b != - ]] && B+=("$b")
    [[ $x != - ]] && X+=("$x")
    [[ $q != - ]] && Q+=("$q")
done
m() { (($#)) && printf '%s\n' "$@" | median || echo -; }
printf 'median of %d (%s): start->banner %ss  start->exit line %ss  start->QEMU exit %ss\n' \
    "$RUNS" "$PROFILE${ARGS[*]:+, ${ARGS[*]}}" "$(m "${B[@]}")" "$(m "${X[@]}")" "$(m "${Q[@]}")"
