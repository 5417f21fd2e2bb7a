#!/usr/bin/env bash
# The deadlock regression, repeated: for --smp 2 and 4, MTTCG and one thread, N runs of each
# outcome. Lock-free must pass every time (the window hit every iteration); hash_page=locked must
# be caught as a deadlock every time (not a timeout, not a crash). Prints the watchdog's
# detection latency distribution (guest ms of no progress before the report, and host wall
# time from QEMU start to exit) and the lock-free iteration throughput.
#   scripts/deadlock-soak.sh [--machine pseries|powernv] [N=20]
# (powernv: the watchdog's system reset is the BMC watchdog's pre-timeout NMI.)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
MOPT=(--machine pseries)
case "${1:-}" in --machine) MOPT=(--machine "${2:?}"); shift 2 ;; --machine=*) MOPT=(--machine "${1#*=}"); shift ;; esac
N=${1:-20}
cargo build --release -q || exit 1
ELF=target/powerpc64-none/release/hashkernel
fail=0
stats() { sort -g | awk '{a[NR]=$1; s+=$1} END {if (NR) printf "n=%d min=%s median=%s max=%s mean=%.3f", NR, a[1], a[int((NR+1)/2)], a[NR], s/NR; else print "n=0"}'; }
for smp in 2 4; do
    for accel in mttcg single; do
        lat=() wall=() thr=() ok=0 caught=0
        for ((i = 1; i <= N; i++)); do
            t0=$EPOCHREALTIME
            out=$(bash scripts/run.sh "$ELF" "${MOPT[@]}" --smp "$smp" --accel "$accel" --timeout 60 test=irqtest::deterministic </dev/null 2>&1 | tr -d '\r')
            rc=$?
            if ((rc == 0)) && grep -q 'irqtest (Deterministic): 300 iterations.* 300 inside' <<<"$out"; then
                ok=$((ok + 1))
                ms=$(sed -n 's/.*300 iterations in \([0-9]*\) ms.*/\1/p' <<<"$out")
                [[ -n $ms && $ms -gt 0 ]] && thr+=("$((300 * 1000 / ms))")
            else
                echo "soak: lockfree run $i (--smp $smp --accel $accel) FAILED (exit $rc)"; grep -E 'irqtest|FAILED|DEADLOCK|Oops' <<<"$out" | head -3
            fi
            t0=$EPOCHREALTIME
            out=$(bash scripts/run.sh "$ELF" "${MOPT[@]}" --smp "$smp" --accel "$accel" --timeout 60 hash_page=locked smp.rounds=1 </dev/null 2>&1 | tr -d '\r')
            rc=$?
            t1=$EPOCHREALTIME
            if ((rc == 1)) && grep -q 'DEADLOCK DETECTED' <<<"$out" && grep -q 'spinning on: page_table_lock' <<<"$out" && ! grep -q 'TIMEOUT' <<<"$out"; then
                caught=$((caught + 1))
                l=$(sed -n 's/.*made no progress for \([0-9]*\) ms.*/\1/p' <<<"$out")
                [[ -n $l ]] && lat+=("$l")
                wall+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')")
            else
                echo "soak: locked run $i (--smp $smp --accel $accel) NOT caught as a deadlock (exit $rc)"; grep -E 'DEADLOCK|TIMEOUT|Oops|panic|exit status' <<<"$out" | head -3
            fi
        done
        echo "soak: --smp $smp --accel $accel: lockfree $ok/$N passed; locked $caught/$N caught as deadlock (${MOPT[1]})"
        echo "soak:   watchdog stall at report (guest ms): $(printf '%s\n' "${lat[@]}" | stats)"
        echo "soak:   locked run, QEMU start to exit (host s): $(printf '%s\n' "${wall[@]}" | stats)"
        echo "soak:   lockfree deterministic iterations/s: $(printf '%s\n' "${thr[@]}" | stats)"
        ((ok == N && caught == N)) || fail=1
    done
done
((fail == 0)) && echo "soak: all outcomes held" || { echo "soak: FAILED"; exit 1; }
