#!/usr/bin/env bash
# Cargo runner: boots a kernel ELF on qemu-system-ppc64 -M pseries (or -M powernv8/9 under
# skiboot with --machine powernv).
#   cargo run [--release] -- [runner options] [bootargs...]
# Exit status: 0 when the kernel reports success, 1 on any failure (test failure, panic, oops,
# deadlock report, QEMU dying without the kernel's exit line), 124 on host timeout.
set -uo pipefail

usage() {
    cat <<'USAGE'
usage: cargo run [--release] -- [options] [bootargs...]
       cargo test [--release] -- [options] [bootargs...]   (boots the test kernel)

options:
  --machine pseries|powernv
                       pseries (default): a PAPR guest, the hypervisor owns the HPT;
                       powernv: bare metal under skiboot (OPAL), the kernel owns the HPT
  --smp N              number of vCPUs (default 2; 1..8)
  --mem SIZE           guest RAM, QEMU syntax (default 1G)
  --cpu MODEL          POWER8 | POWER9 | POWER10 (default POWER9 on pseries, POWER8 on powernv,
                       where it picks the machine: powernv8/9/10)
  --firmware vof|slof  pseries boot firmware (default vof: fast; slof: QEMU's default, ~3.4 s);
                       powernv always boots skiboot
  --accel mttcg|single multi-threaded TCG (default) or one host thread for all vCPUs
  --gdb[=PORT]         start QEMU's gdb stub (default port 1234) and wait for a debugger
  --timeout SECONDS    host-side limit (default 120; 0 = none); on expiry kill QEMU, exit 124
  --serial-log FILE    write the PCI 16550 UART's output to FILE (default: discarded, since
                       after bring-up it repeats the console line for line; pseries only)
  --uart-stdio         put the UART on the terminal too (muxed with the vty: every console line
                       then shows twice; Ctrl-A c cycles monitor/vty/UART input; pseries only)
  --no-uart            do not add the pci-serial device (powernv never has one)
  --qemu-arg ARG       pass ARG to QEMU unchanged (repeatable)
  --print-cmd          print the QEMU command line before running it
  --count-insns FILE[,OPT...]
                       count guest instructions per exception window (vector to rfid) with the
                       TCG plugin tools/insncount (built if needed) into FILE; OPT: all (every
                       window, not only marker-tagged ones), detail (one line per window), or
                       a plugin KEY=VALUE (tools/insncount/README.md)
  -h, --help           this text
  (libtest flags that cargo adds or suggests -- -q/--quiet, --nocapture, --no-capture,
   --show-output, --test-threads, --color, --format -- are accepted and ignored)

bootargs (passed with -append, read by the kernel from /chosen/bootargs):
  test=FILTER          run the in-kernel tests whose names contain FILTER, then exit
  crash=KIND           null | wild | exec | panic | user | notpresent | guard | nested | stack | excstack
  hash_page=MODE       lockfree (default) | locked (the 2003 design: hash_page takes page_table_lock)
                       | patch2003 | cas2 (the 2003 review's flawed lock-free designs)
  irqtest.iterations=N irqtest.mode=deterministic|random smp.rounds=N watchdog.ms=N
  bench=hash|smp|ceiling|contention|faults|vmalloc|all   bench.ms=N   bench.wait=cede|relax   quiet
  trace=GROUPS         record kernel events: all | off | exc,hash,hcall,lock,mm,timer,watchdog;
                       dumped on exit, oops and deadlock (scripts/trace.py: JSON, SVG)
  trace.stop=irqtest   stop recording when the default run's interrupt scenario ends
  inject=KIND:N|KIND:P%[xT][,...]   fault injection: every Nth call / P percent of calls (at
                       most T times) fail; KIND = enter_full enter_busy enter_longbusy
                       protect_notfound protect_busy remove_notfound remove_busy (transient: all
                       seven) enter_hardware protect_hardware remove_hardware (permanent) frame heap
  inject.seed=N        seed of the injection's random streams (default 1)
USAGE
}

die() { echo "run.sh: $*" >&2; exit 1; }

ELF=""
MACH=pseries CPU_SET="" FW_SET=0 UART_SET=0
SMP=2 MEM=1G CPU=POWER9 FW=vof ACCEL=mttcg GDB="" TIMEOUT=120 SERIAL_LOG="" UART=1 UART_STDIO=0 PRINT=0
EXTRA=() BOOTARGS=() COUNT=""
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --machine) MACH=${2:?}; shift ;;
        --machine=*) MACH=${1#*=} ;;
        --smp) SMP=${2:?}; shift ;;
        --smp=*) SMP=${1#*=} ;;
        --mem) MEM=${2:?}; shift ;;
        --mem=*) MEM=${1#*=} ;;
        --cpu) CPU=${2:?}; CPU_SET=1; shift ;;
        --cpu=*) CPU=${1#*=}; CPU_SET=1 ;;
        --firmware) FW=${2:?}; FW_SET=1; shift ;;
        --firmware=*) FW=${1#*=}; FW_SET=1 ;;
        --accel) ACCEL=${2:?}; shift ;;
        --accel=*) ACCEL=${1#*=} ;;
        --gdb) GDB=1234 ;;
        --gdb=*) GDB=${1#*=} ;;
        --timeout) TIMEOUT=${2:?}; shift ;;
        --timeout=*) TIMEOUT=${1#*=} ;;
        --serial-log) SERIAL_LOG=${2:?}; UART_SET=1; shift ;;
        --serial-log=*) SERIAL_LOG=${1#*=}; UART_SET=1 ;;
        --no-uart) UART=0 ;;
        --uart-stdio) UART_STDIO=1; UART_SET=1 ;;
        --qemu-arg) EXTRA+=("${2:?}"); shift ;;
        --print-cmd) PRINT=1 ;;
        --count-insns) COUNT=${2:?}; shift ;;
        --count-insns=*) COUNT=${1#*=} ;;
        # libtest harness flags that cargo itself adds or suggests (`cargo test -q` passes
        # --quiet; its failure hint says "pass --no-capture"): meaningless for a kernel, ignored.
        -q|--quiet|--nocapture|--no-capture|--show-output|--test-threads=*|--color=*|--format=*) ;;
        --test-threads|--color|--format) shift ;;
        --*) die "unknown option '$1' (valid: --machine --smp --mem --cpu --firmware --accel --gdb --timeout --serial-log --uart-stdio --no-uart --qemu-arg --print-cmd --count-insns --help)" ;;
        *)
            if [[ -z $ELF && -f $1 ]] && head -c 4 "$1" | grep -q 'ELF'; then
                ELF=$1
            else
                BOOTARGS+=("$1")
            fi ;;
    esac
    shift
done
[[ -n $ELF ]] || die "no kernel ELF given (run through 'cargo run', which passes it)"
case "$MACH" in pseries|powernv) ;; *) die "--machine must be pseries or powernv, got '$MACH'" ;; esac
if [[ $MACH == powernv ]]; then
    [[ -n $CPU_SET ]] || CPU=POWER8
    ((FW_SET)) && die "--firmware is a pseries option: powernv always boots skiboot (OPAL)"
    ((UART_SET)) && die "--serial-log and --uart-stdio are pseries options: powernv has no PCI UART (its console is the LPC UART, on stdio)"
fi
[[ $SMP =~ ^[1-8]$ ]] || die "--smp must be 1..8, got '$SMP'"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be a whole number of seconds"
case "${CPU^^}" in POWER8|POWER9|POWER10) CPU=${CPU^^} ;; *) die "--cpu must be POWER8, POWER9 or POWER10, got '$CPU'" ;; esac
case "$FW" in vof|slof) ;; *) die "--firmware must be vof or slof, got '$FW'" ;; esac
case "$ACCEL" in mttcg) ACCEL_ARG=tcg,thread=multi ;; single) ACCEL_ARG=tcg,thread=single ;; *) die "--accel must be mttcg or single" ;; esac
command -v qemu-system-ppc64 >/dev/null || die "qemu-system-ppc64 not found: run scripts/setup.sh"

MACHINE=pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off
[[ $FW == vof ]] && MACHINE+=,x-vof=on
# POWER8 has no large decrementer; the cap must be off there.
[[ $CPU == POWER8 ]] && MACHINE+=,cap-large-decr=off

if [[ $MACH == powernv ]]; then
    # skiboot (QEMU's bundled skiboot.lid, OPAL v7.0) boots first and enters the kernel with a
    # flattened device tree. Its console is the LPC UART (-serial). QEMU's simulated BMC on
    # the LPC bus is what OPAL's power-down and the watchdog NMI talk to. Every run ends in a
    # BMC power-down (QEMU exits 0: no isa-debug-exit/pvpanic-isa in this QEMU): the status
    # below comes from the kernel's sentinel line. -nodefaults also leaves out the PHBs, whose
    # link training would cost skiboot 7.5 s per boot.
    PNV=${CPU#POWER}
    QEMU=(qemu-system-ppc64 -M "powernv$PNV" -accel "$ACCEL_ARG" -smp "$SMP" -m "$MEM"
          -nodefaults -vga none -nographic -no-reboot -action panic=exit-failure
          -chardev stdio,mux=on,id=c0,signal=off -serial chardev:c0 -mon chardev=c0,mode=readline
          -device ipmi-bmc-sim,id=bmc0 -device isa-ipmi-bt,bmc=bmc0,irq=10
          -kernel "$ELF")
else
QEMU=(qemu-system-ppc64 -M "$MACHINE" -cpu "$CPU" -accel "$ACCEL_ARG" -smp "$SMP" -m "$MEM"
      -nodefaults -vga none -nographic -no-reboot -action panic=exit-failure
      -kernel "$ELF")
fi
if [[ $MACH == powernv ]]; then
    :
elif [[ -n $SERIAL_LOG ]]; then
    QEMU+=(-chardev stdio,id=c0,signal=off -serial chardev:c0)
    QEMU+=(-chardev "file,id=uart0,path=$SERIAL_LOG" -device pci-serial,chardev=uart0)
elif ((UART && UART_STDIO)); then
    # vty and 16550 share the terminal through a mux (Ctrl-A c cycles monitor/vty/UART input).
    QEMU+=(-chardev stdio,mux=on,id=c0,signal=off -serial chardev:c0 -mon chardev=c0,mode=readline
           -device pci-serial,chardev=c0)
elif ((UART)); then
    # The kernel mirrors its console to the 16550 once it is up: on the same terminal every line
    # would show twice (and scripts parsing the output would see it twice), so the UART's output
    # goes to a null backend; the monitor stays on the mux (Ctrl-A c).
    QEMU+=(-chardev stdio,mux=on,id=c0,signal=off -serial chardev:c0 -mon chardev=c0,mode=readline
           -chardev null,id=uart0 -device pci-serial,chardev=uart0)
else
    QEMU+=(-chardev stdio,id=c0,signal=off -serial chardev:c0)
fi
((${#BOOTARGS[@]})) && QEMU+=(-append "${BOOTARGS[*]}")
if [[ -n $GDB ]]; then
    QEMU+=(-gdb "tcp::$GDB" -S)
    echo "run.sh: QEMU waits for gdb on port $GDB. Attach with:"
    echo "    scripts/gdb.sh $ELF $GDB"
    TIMEOUT=0
fi
if [[ -n $COUNT ]]; then
    IFS=, read -r -a copts <<<"$COUNT"
    cfile=${copts[0]}
    [[ -n $cfile && -d $(dirname "$cfile") ]] || die "--count-insns: no directory for output file '$cfile'"
    [[ $cfile == /* ]] || cfile=$PWD/$cfile
    plugin_args=",out=$cfile"
    for o in "${copts[@]:1}"; do
        case "$o" in
            all) plugin_args+=",mode=all" ;;
            detail) plugin_args+=",detail=on" ;;
            mode=*|endian=*|vbase=*|detail=*|after=*|start=*|entry=*|trace=*|mark=*|flush=*) plugin_args+=",$o" ;;
            *) die "--count-insns: unknown option '$o' (all, detail, or a plugin KEY=VALUE: mode endian vbase detail after start entry trace mark flush)" ;;
        esac
    done
    so=$("$(dirname "$0")/insncount.sh" build) || die "--count-insns: building the plugin failed"
    QEMU+=(-plugin "$so$plugin_args")
fi
QEMU+=("${EXTRA[@]}")
((PRINT)) && echo "run.sh: ${QEMU[*]}"

LOG=$(mktemp /tmp/hashkernel-run.XXXXXX)
trap 'rm -f "$LOG"' EXIT
START=$(date +%s.%N)
if ((TIMEOUT > 0)); then
    timeout --foreground -k 2 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>&1 | tee "$LOG"
    rc=${PIPESTATUS[0]}
else
    "${QEMU[@]}" 2>&1 | tee "$LOG"
    rc=${PIPESTATUS[0]}
fi
END=$(date +%s.%N)
secs=$(awk -v a="$START" -v b="$END" 'BEGIN{printf "%.2f", b-a}')

if ((rc == 124 || rc == 137)); then
    echo "run.sh: TIMEOUT: QEMU killed after ${TIMEOUT}s (no exit from the kernel)" >&2
    exit 124
fi
status=$(grep -a -o 'hashkernel: exit status [0-9]*' "$LOG" | tail -1 | awk '{print $4}')
if [[ -z $status ]]; then
    echo "run.sh: FAILURE: QEMU exited with status $rc after ${secs}s without the kernel's exit line" >&2
    exit 1
fi
if [[ $status == 0 && $rc == 0 ]]; then
    echo "run.sh: kernel reported success (${secs}s)" >&2
    exit 0
fi
# Name the addresses of any call trace the kernel printed (it has no symbol table itself).
addrs=$(tr -d '\r' <"$LOG" | grep -a -oE '^\s+\[0x[0-9a-f]{16}\]|NIP 0x[0-9a-f]{16}' | grep -oE '0x[0-9a-f]{16}' | awk '!seen[$0]++' | head -40)
if [[ -n $addrs ]] && command -v gdb-multiarch >/dev/null; then
    echo "run.sh: symbols for the addresses above ($ELF):" >&2
    args=()
    for a in $addrs; do args+=(-ex "info symbol $a"); done
    paste <(printf '%s\n' $addrs) <(gdb-multiarch -q -batch -nx "$ELF" "${args[@]}" 2>/dev/null | sed -E 's/ in section .*//; s/\[[0-9a-f]{16}\]//g') \
        | awk -F'\t' '{printf "  %s  %s\n", $1, $2}' >&2
fi
echo "run.sh: kernel reported failure (status $status, QEMU $rc, ${secs}s)" >&2
exit 1
