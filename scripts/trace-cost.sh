#!/usr/bin/env bash
# What the event trace costs while it is off, measured with the exact counter (tools/insncount):
#
#   scripts/trace-cost.sh
#
# Builds the release kernel three times: without trace points (--features trace-points-none),
# as shipped (one `nop` per trace point), and with two nops per trace point
# (--features trace-points-double). Each runs `bench=hash` under the instruction-counting
# plugin, which counts every hash-fault path of both designs, vector to rfid (the paths of
# scripts/bench.sh). Per path:
#   cost   = shipped - none     (what the trace points cost while off)
#   points = double - shipped   (how many trace points the path passes)
# and the checks: cost <= 2 * points on every path (a path with no trace point costs nothing),
# and the path-length targets of the lock-free design still hold (primary insert <= 150, BUSY
# re-execution <= 100, insert after eviction <= 300, segment miss <= 50; longest window).
# Last line: "trace-cost: ok: ..." or "trace-cost: FAIL: ...".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
WORK=$(mktemp -d /tmp/trace-cost.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
say() { echo "trace-cost: $*"; }

scripts/insncount.sh build >/dev/null || { say "FAIL: cannot build the counting plugin"; exit 1; }
for v in none double shipped; do
    case $v in
        none) feat=(--features trace-points-none) ;;
        double) feat=(--features trace-points-double) ;;
        shipped) feat=() ;;
    esac
    cargo build --release -q "${feat[@]}" || { say "FAIL: cargo build --release ${feat[*]}"; exit 1; }
    cp target/powerpc64-none/release/hashkernel "$WORK/$v.elf"
done
for v in none double shipped; do
    log=$(bash scripts/run.sh "$WORK/$v.elf" --smp 2 --timeout 600 --count-insns "$WORK/$v.counts" bench=hash </dev/null 2>&1 | tr -d '\r')
    if ! grep -q 'hashkernel: exit status 0' <<<"$log"; then
        say "FAIL: the $v kernel's bench=hash run failed:"; grep -a -E 'bench:|Oops|panic|FAILED|run.sh:' <<<"$log" | head -5; exit 1
    fi
    grep '^BENCHTAG' <<<"$log" >"$WORK/$v.tags"
done

# Per path (tag, vector): the shortest and the longest window; a BUSY re-execution counts only
# its windows without a hypercall (like scripts/bench.sh).
paths() { # variant -> lines "name min max"
    awk '
        $1 == "BENCHTAG" { name[$2] = $3; next }
        $1 == "J" && ($2 in name) {
            nm = name[$2]
            if (nm ~ /busy_reexecution$/ && $4 != 0) next
            if (nm ~ /segment_miss_then_hash$/) nm = nm ($3 == "0x380" ? ".0x380" : ".0x300")
            else if ($3 != "0x300" && nm !~ /segment_miss$/) nm = nm "." $3
            if (!(nm in lo) || $5 < lo[nm]) lo[nm] = $5
            if (!(nm in hi) || $5 > hi[nm]) hi[nm] = $5
        }
        END { for (k in lo) print k, lo[k], hi[k] }' "$WORK/$1.tags" "$WORK/$1.counts" | sort
}
paths none >"$WORK/none.p"; paths shipped >"$WORK/shipped.p"; paths double >"$WORK/double.p"
join "$WORK/none.p" "$WORK/shipped.p" | join - "$WORK/double.p" >"$WORK/all.p"
[[ -s $WORK/all.p ]] || { say "FAIL: no paths counted"; exit 1; }

printf 'trace-cost: %-52s %5s %8s %6s %7s %5s\n' path none shipped double points cost
fail=0 worst=0
while read -r name n_lo n_hi s_lo s_hi d_lo d_hi; do
    points=$((d_lo - s_lo)) cost=$((s_lo - n_lo))
    note=""
    if ((cost > 2 * points)); then note="  <- more than 2 per trace point"; fail=1; fi
    if ((points > 0)); then
        per=$(awk -v c="$cost" -v p="$points" 'BEGIN { printf "%.2f", c / p }')
        awk -v a="$per" -v b="$worst" 'BEGIN { exit !(a > b) }' && worst=$per
    fi
    printf 'trace-cost: %-52s %5s %8s %6s %7d %5d%s\n' "$name" "$n_lo" "$s_lo" "$d_lo" "$points" "$cost" "$note"
done <"$WORK/all.p"

hi() { awk -v k="$1" '$1 == k { print $3; exit }' "$WORK/shipped.p"; }
targets=""
for t in "hash.lockfree.insert_primary 150" "hash.lockfree.busy_reexecution 100" \
         "hash.lockfree.insert_after_eviction 300" "hash.lockfree.segment_miss 50"; do
    read -r k lim <<<"$t"
    v=$(hi "$k")
    if [[ -z $v ]] || ((v > lim)); then say "FAIL: ${k#hash.lockfree.} is ${v:-unmeasured} instructions (target <= $lim)"; fail=1; fi
    targets+="${targets:+, }${k#hash.lockfree.} $v <= $lim"
done
if ((fail)); then say "FAIL"; exit 1; fi
say "ok: tracing off costs at most $worst instruction(s) per trace point on every hash-fault path (limit 2); targets (longest window): $targets"
