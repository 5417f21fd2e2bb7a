#!/usr/bin/env bash
# How the host scheduled a QEMU run's threads: started beside a QEMU that writes a pid file
# (-pidfile) and names its threads (-name NAME,debug-threads=on: "CPU 0/TCG", ...), it samples
# every thread's /proc/PID/task/TID/schedstat (nanoseconds on a CPU, nanoseconds runnable but
# waiting for one) and the host's /proc/stat every 20 ms until QEMU exits, and prints one line
# from the last sample in which every vCPU thread was still there:
#
#   scripts/qemu-sched.sh PIDFILE NCPUS
#   -> SCHED wall_s=W vcpus=N run_s=r0,r1,... wait_s=w0,w1,... qemu_run_s=Q host_busy_s=H host_cpus=C
#
# run_s/wait_s: per vCPU thread, on a host CPU / runnable but not running (the host had no core
# for it); qemu_run_s: all QEMU threads; host_busy_s: every process on the host (/proc/stat,
# 10 ms ticks), so host_busy_s - qemu_run_s is what the rest of the machine took meanwhile.
set -uo pipefail
PIDFILE=${1:?pid file} N=${2:?number of vCPUs}
for _ in $(seq 1000); do [[ -s $PIDFILE ]] && break; sleep 0.01; done
pid=$(cat "$PIDFILE" 2>/dev/null) || { echo "qemu-sched: no pid in $PIDFILE" >&2; exit 1; }
hz=$(getconf CLK_TCK)
host_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
t0=$EPOCHREALTIME h0=$(host_busy)
last=""
while [[ -d /proc/$pid ]]; do
    sample="" vcpus=0 qrun=0
    for t in /proc/"$pid"/task/*; do
        read -r comm <"$t/comm" 2>/dev/null || continue
        read -r run wait _ <"$t/schedstat" 2>/dev/null || continue
        qrun=$((qrun + run))
        if [[ $comm =~ ^CPU\ ([0-9]+)/TCG$ ]]; then
            sample+=" ${BASH_REMATCH[1]}:$run:$wait"
            vcpus=$((vcpus + 1))
        fi
    done
    if ((vcpus == N)); then
        last="$EPOCHREALTIME $(host_busy) $qrun$sample"
    fi
    sleep 0.02
done
[[ -n $last ]] || { echo "qemu-sched: never saw $N vCPU threads (pid $pid)" >&2; exit 1; }
read -r t1 h1 qrun rest <<<"$last"
awk -v t0="$t0" -v t1="$t1" -v h0="$h0" -v h1="$h1" -v hz="$hz" -v q="$qrun" -v n="$N" -v cpus="$(nproc)" -v rest="$rest" 'BEGIN {
    k = split(rest, f, " ")
    for (i = 1; i <= k; i++) { split(f[i], p, ":"); r[p[1]] = p[2] / 1e9; w[p[1]] = p[3] / 1e9 }
    rs = ""; ws = ""
    for (c = 0; c < n; c++) { rs = rs (c ? "," : "") sprintf("%.3f", r[c]); ws = ws (c ? "," : "") sprintf("%.3f", w[c]) }
    printf "SCHED wall_s=%.3f vcpus=%d run_s=%s wait_s=%s qemu_run_s=%.3f host_busy_s=%.2f host_cpus=%d\n", t1 - t0, n, rs, ws, q / 1e9, (h1 - h0) / hz, cpus
}'
