#!/usr/bin/env bash
# scripts/matrix.sh [--release] [--only REGEX]
#
# The runner's configuration matrix, covered representatively: every --smp value 1..8, both
# accelerators, every CPU model and both firmwares at least once, and --smp 1/2/4/8 with both
# accelerators. Each configuration boots the default run (`cargo run`) and the test kernel
# (`cargo test`); one line per boot, then "matrix: N passed, M failed" (exit 1 if M > 0).
# Boots run one after the other (never two QEMUs at once). --only keeps the configurations
# whose option string matches REGEX (bash =~).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
PROFILE=() ONLY=""
while (($#)); do
    case "$1" in
        --release) PROFILE=(--release) ;;
        --only) ONLY=${2:?--only needs a REGEX}; shift ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "matrix.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
CONFIGS=(
    "--smp 1 --accel mttcg --cpu POWER9 --firmware vof"
    "--smp 1 --accel single --cpu POWER8 --firmware vof"
    "--smp 2 --accel mttcg --cpu POWER10 --firmware vof"
    "--smp 2 --accel single --cpu POWER9 --firmware slof"
    "--smp 3 --accel mttcg --cpu POWER8 --firmware slof"
    "--smp 4 --accel mttcg --cpu POWER9 --firmware vof"
    "--smp 4 --accel single --cpu POWER10 --firmware vof"
    "--smp 5 --accel single --cpu POWER9 --firmware vof"
    "--smp 6 --accel mttcg --cpu POWER10 --firmware slof"
    "--smp 7 --accel single --cpu POWER8 --firmware vof"
    "--smp 8 --accel mttcg --cpu POWER9 --firmware vof"
    "--smp 8 --accel single --cpu POWER9 --firmware vof"
)
log=$(mktemp /tmp/matrix.XXXXXX)
trap 'rm -f "$log"' EXIT
pass=0 fail=0
for c in "${CONFIGS[@]}"; do
    [[ -z $ONLY || $c =~ $ONLY ]] || continue
    for kind in run test; do
        t0=${EPOCHREALTIME/./}
        # shellcheck disable=SC2086 # $c is a list of options
        cargo "$kind" -q "${PROFILE[@]}" -- --timeout 300 $c >"$log" 2>&1
        rc=$?
        t=$(( (${EPOCHREALTIME/./} - t0) / 100000 ))
        sum=$(tr -d '\r' <"$log" | grep -a -E '^(self-checks: [0-9]+ passed|[0-9]+ passed, [0-9]+ failed$)' | tail -n 1)
        if ((rc == 0)); then
            pass=$((pass + 1))
            printf 'matrix: PASS cargo %-4s %-50s %3d.%ds  %s\n' "$kind" "$c" $((t / 10)) $((t % 10)) "$sum"
        else
            fail=$((fail + 1))
            printf 'matrix: FAIL cargo %-4s %-50s %3d.%ds  exit %d  %s\n' "$kind" "$c" $((t / 10)) $((t % 10)) "$rc" "$sum"
            tr -d '\r' <"$log" | grep -a -E 'FAILED|Oops|panic|DEADLOCK|TIMEOUT|did not come online' | head -n 5 | sed 's/^/    | /'
        fi
    done
done
echo "matrix: $pass passed, $fail failed"
((pass + fail > 0 && fail == 0))
