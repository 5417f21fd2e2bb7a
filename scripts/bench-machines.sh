#!/usr/bin/env bash
# The hash-fault path lengths on both machines, side by side: pseries (the hypervisor's HPT,
# H_ENTER/H_REMOVE/H_PROTECT) and powernv (the kernel's own HPT: native inserts under a
# per-HPTE lock, tlbie on removal), same guest CPU (POWER8), same release kernel, same exact
# counter (tools/insncount: every guest instruction from the vector to rfid; a hypercall is
# one instruction, what the hypervisor does for it is not counted).
#
#   scripts/bench-machines.sh [--quick]
#
# Prints one `BENCH <machine>.<design>.<path> N insns` line per figure, then a markdown table.
# Fails unless every path was measured on both machines, the lock-free design is never longer
# than the locked one on either, powernv's primary insert is within BENCH_INSERT_LIMIT (200)
# instructions, and single-stepping (scripts/stepcount.sh) agrees with the plugin on
# powernv's primary insert. --quick: skip the table's prose.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
QUICK=0
for a in "$@"; do
    case "$a" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-machines: unknown option '$a' (valid: --quick --help)" >&2; exit 2 ;;
    esac
done
cargo build --release -q || { echo "bench-machines: build failed"; exit 1; }
ELF=target/powerpc64-none/release/hashkernel
scripts/insncount.sh build >/dev/null || { echo "bench-machines: cannot build the instruction-counting plugin"; exit 1; }
WORK=$(mktemp -d /tmp/bench-machines.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail=0

# measure MACHINE: the plugin's per-tag statistics of bench=hash into $WORK/MACHINE.counts and
# one "name min max sc" line per path into $WORK/MACHINE.paths.
measure() {
    local m=$1 log
    log=$(bash scripts/run.sh "$ELF" --machine "$m" --cpu POWER8 --smp 2 --timeout 600 \
        --count-insns "$WORK/$m.counts" bench=hash </dev/null 2>&1 | tr -d '\r')
    if ! grep -q 'hashkernel: exit status 0' <<<"$log"; then
        echo "bench-machines: bench=hash failed on $m"; grep -a -E 'bench:|Oops|panic|run.sh:' <<<"$log" | head -5
        return 1
    fi
    grep -a '^BENCHTAG' <<<"$log" >"$WORK/$m.tags"
    # Per (tag, vector), from the J lines (tag vector sc insns count): the shortest and longest
    # window, and the hypercalls of the shortest.
    awk '
        $1 == "BENCHTAG" { name[$2] = $3; next }
        $1 == "J" {
            k = $2 " " $3
            if ($4 == 0) { if (!(k in lo0) || $5 < lo0[k]) lo0[k] = $5; if (!(k in hi0) || $5 > hi0[k]) hi0[k] = $5 }
            if (!(k in lo) || $5 < lo[k]) { lo[k] = $5; sc[k] = $4 }
            if (!(k in hi) || $5 > hi[k]) hi[k] = $5
        }
        END {
            for (k in lo) {
                split(k, f, " "); if (!(f[1] in name)) continue
                nm = name[f[1]]; sub(/^hash\./, "", nm)
                if (nm ~ /segment_miss_then_hash$/) nm = nm "." f[2]
                else if (f[2] != "0x300" && nm !~ /segment_miss$/) nm = nm "." f[2]
                # The BUSY tag also brackets the final insert: on powernv it has no hypercall
                # either, so the re-execution is the shortest window.
                if (nm ~ /busy_reexecution$/ && (k in lo0)) print nm, lo0[k], lo0[k], 0
                else print nm, lo[k], hi[k], sc[k]
            }
        }' "$WORK/$m.tags" "$WORK/$m.counts" | sort >"$WORK/$m.paths"
    while read -r n lo hi sc; do
        echo "BENCH $m.$n $lo insns (range $lo-$hi, sc $sc)"
    done <"$WORK/$m.paths"
}
measure pseries || exit 1
measure powernv || exit 1

get() { awk -v n="$2" -v c="$3" '$1 == n { print $c; exit }' "$WORK/$1.paths"; }
PATHS="insert_primary insert_secondary insert_after_eviction insert_after_eviction_bolted_primary hpte_update busy_reexecution bad_access segment_miss segment_miss_then_hash.0x380 segment_miss_then_hash.0x300"
for m in pseries powernv; do
    for p in $PATHS; do
        for d in lockfree locked; do
            [[ -n $(get "$m" "$d.$p" 2) ]] || { echo "bench-machines: no count for $m $d.$p"; fail=1; }
        done
        lf=$(get "$m" "lockfree.$p" 3) lk=$(get "$m" "locked.$p" 2)
        if [[ -n $lf && -n $lk && $p != insert_after_eviction* ]] && ((lf > lk)); then
            echo "bench-machines: $m: lock-free $p ($lf) longer than locked ($lk)"; fail=1
        fi
    done
done
INSERT=$(get powernv lockfree.insert_primary 3)
LIMIT=${BENCH_INSERT_LIMIT:-200}
if [[ -z $INSERT ]] || ((INSERT > LIMIT)); then
    echo "bench-machines: powernv's primary insert is ${INSERT:-unmeasured} instructions (limit $LIMIT)"; fail=1
fi

# Single-stepping cross-check of powernv's primary insert (tag 1 marks it, as in bench.sh).
MARKS=$(nm "$ELF" | awk '$3 == "count_marks" { print $1 }')
line=$(timeout 300 scripts/stepcount.sh --after "$(printf '*0x%x' $((0x$MARKS + 8)))" --at '*0xc000000000004300' "$ELF" \
    -- --machine powernv --cpu POWER8 --smp 2 bench=hash 2>&1 | grep '^STEPCOUNT' | tail -1)
n=$(awk '{print $2}' <<<"$line")
echo "BENCH stepcount.powernv.lockfree.insert_primary ${n:-?} insns ($line)"
lo=$(get powernv lockfree.insert_primary 2) hi=$(get powernv lockfree.insert_primary 3)
if [[ -z $n || -z $lo ]] || ((n < lo || n > hi)); then
    echo "bench-machines: single-stepping gave ${n:-nothing}, the plugin ${lo:-?}-${hi:-?}"; fail=1
fi
((fail)) && { echo "bench-machines: FAILED"; exit 1; }

cell() { local lo hi; lo=$(get "$1" "$2" 2); hi=$(get "$1" "$2" 3); [[ $lo == "$hi" ]] && echo "$lo" || echo "$lo–$hi"; }
echo
echo "| path (POWER8, release) | pseries lock-free | powernv lock-free | pseries locked | powernv locked | hypercalls (pseries) |"
echo "|---|---|---|---|---|---|"
for p in $PATHS; do
    echo "| $p | $(cell pseries "lockfree.$p") | $(cell powernv "lockfree.$p") | $(cell pseries "locked.$p") | $(cell powernv "locked.$p") | $(get pseries "lockfree.$p" 4) |"
done
if ((!QUICK)); then
    echo
    echo "pseries counts stop at \`sc 1\`: the hypervisor's H_ENTER (QEMU's C code here, the"
    echo "hypervisor's own HPTE lock, barriers and tlbie on real hardware) is not in them. On"
    echo "powernv every instruction of the table update is the kernel's and is counted."
fi
echo "bench-machines: ok: powernv insert_primary $INSERT instructions (pseries $(get pseries lockfree.insert_primary 3) + the hypervisor's H_ENTER), single-stepping agrees"
