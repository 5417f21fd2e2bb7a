#!/usr/bin/env bash
# SMP race stress over the CI matrix: --smp 2 and 4, multi-threaded TCG and one thread.
# Each run: test=smp::race (rounds of concurrent faults vs. vmalloc/vfree, permission changes and
# page aging, invariants checked through H_READ after every round). Sums the faults that were
# resolved (hash faults minus BUSY re-executions, which are faults too but only retry); fails on
# any violation, any failed run, a --smp 4 run without both BUSY re-executions and lost
# reservations in the fault path, or fewer than MIN_FAULTS resolved faults in total.
#   scripts/stress.sh [--machine pseries|powernv] [ROUNDS] [MIN_FAULTS]
# (powernv: the native HPT, invariants read from the kernel's own table.)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
case "${1:-}" in -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
MOPT=(--machine pseries)
case "${1:-}" in --machine) MOPT=(--machine "${2:?}"); shift 2 ;; --machine=*) MOPT=(--machine "${1#*=}"); shift ;; esac
ROUNDS=${1:-260}
MIN=${2:-1000000}
total=0 resolved=0 viol=0 failed=0
for smp in 2 4; do
    for accel in mttcg single; do
        log=$(mktemp /tmp/stress.XXXXXX)
        cargo run --release -q -- "${MOPT[@]}" --smp "$smp" --accel "$accel" --timeout 600 "smp.rounds=$ROUNDS" test=smp::race >"$log" 2>&1
        rc=$?
        line=$(tr -d '\r' <"$log" | grep -a '^smp stress: [0-9]* CPUs' | tail -1)
        f=$(sed -n 's/.* ms: \([0-9]*\) faults.*/\1/p' <<<"$line")
        v=$(sed -n 's/.* \([0-9]*\) violations$/\1/p' <<<"$line")
        b=$(sed -n 's/.* \([0-9]*\) BUSY re-executions.*/\1/p' <<<"$line")
        echo "stress: --smp $smp --accel $accel (${MOPT[1]}): exit $rc: ${line:-no stress report}"
        tr -d '\r' <"$log" | grep -a -E 'INVARIANT VIOLATED|race not exercised|FAILED|Oops|panic' | head -5
        if ((rc != 0)) || [[ -z $f ]]; then failed=$((failed + 1)); fi
        s=$(sed -n 's/.* \([0-9]*\) stcx\. failures.*/\1/p' <<<"$line")
        # With 4 CPUs the race must be real in the fault path itself: BUSY re-executions and
        # lost reservations, whatever the accelerator on pseries. On powernv the path has no
        # hypercall, and one-thread TCG switches vCPUs only at its timer kick, between
        # translation blocks: never between the take's ldarx and stdcx. (no lost reservation
        # in our runs), so there the requirement holds for multi-threaded TCG only.
        if ((smp == 4)) && [[ ${MOPT[1]} == pseries || $accel == mttcg ]] && { ((${b:-0} == 0)) || ((${s:-0} == 0)); }; then
            echo "stress: race not exercised with --smp 4 --accel $accel (${b:-0} BUSY re-executions, ${s:-0} stcx. failures)"
            failed=$((failed + 1))
        fi
        total=$((total + ${f:-0}))
        resolved=$((resolved + ${f:-0} - ${b:-0}))
        viol=$((viol + ${v:-0}))
        rm -f "$log"
    done
done
echo "stress: total $total faults ($resolved resolved, the rest BUSY re-executions) in 4 runs (smp 2/4 x mttcg/single, $ROUNDS rounds each, ${MOPT[1]}), $viol violations, $failed failed runs"
((failed == 0 && viol == 0 && resolved >= MIN)) || { echo "stress: FAILED (need >= $MIN resolved faults, 0 violations, 0 failed runs)"; exit 1; }
