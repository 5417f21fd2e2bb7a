#!/usr/bin/env bash
# Attach gdb-multiarch to the QEMU gdbstub started by `cargo run -- --gdb[=PORT]`.
#
#   scripts/gdb.sh [ELF] [PORT] [extra gdb args...]
#
# ELF defaults to target/powerpc64-none/debug/hashkernel, PORT to 1234. Loads the kernel ELF,
# forces powerpc:common64 big-endian (gdb-multiarch guesses little endian without it), connects
# with `target remote :PORT` and sources scripts/helpers.gdb (pte, pte-decode, hashstats,
# excframe, slb, break-hash-fault, hk-realmode/hk-virtual, and unwinders through the 0x300
# entry and exc_common).
# Extra arguments go to gdb unchanged (e.g. -batch -ex 'bt'), after the connection is made.
#
# QEMU starts with the CPUs stopped at the firmware entry 0x100 (-S). Then, for example:
#   (gdb) break do_hash_fault                           # every 0x300 hash fault (the UART's first)
#   (gdb) break-hash-fault vmalloc                      # ... only 0xd... faults (0x300 and 0x400)
#   (gdb) continue
#   (gdb) bt                      # through hash_fault_entry (or exc_common) into the interrupted code
#   (gdb) p/x $dar                # QEMU exposes DAR/DSISR/SRR0/SRR1 as registers
#   (gdb) pte $dar                # the faulting address's page-table walk and PTE
#   (gdb) hashstats
#   (gdb) info threads            # one thread per vCPU
#
# Real-mode entry stub (before translation; the image runs at physical 0x400000):
#   (gdb) hk-realmode             # symbols at physical addresses
#   (gdb) break *_start           # = *0x400000, the first instruction QEMU runs in the image
#                                 # (without the "*" gdb skips a "prologue" to _start+68)
#   (gdb) break early_main
#   (gdb) continue
#   ...
#   (gdb) hk-virtual              # back to link addresses once kmain runs translated
#   (gdb) break hashkernel::kmain::kmain
#   Without reloading symbols: `break *0x400000` (entry), or `info address FN` and break at that
#   address minus 0xc000000000000000. A breakpoint on a 0xc... address never hits in real mode:
#   QEMU compares the exact NIP. scripts/gdb-test.sh tests this recipe.
#
# QEMU monitor commands work through the stub: `monitor info tlb` is the SLB of the monitor's
# current vCPU (`slb` wraps it), `monitor info registers` adds SRR0/1, DAR, DSISR, LPCR (no SLB).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ELF=${1:-$ROOT/target/powerpc64-none/debug/hashkernel}
PORT=${2:-1234}
(($# >= 1)) && shift
(($# >= 1)) && shift
# The runner prints the ELF relative to the repository: accept that from anywhere.
[[ -f $ELF || ! -f $ROOT/$ELF ]] || ELF=$ROOT/$ELF
[[ -f $ELF ]] || { echo "gdb.sh: no kernel ELF at '$ELF' (cargo build first)" >&2; exit 1; }
[[ $PORT =~ ^[0-9]+$ ]] || { echo "gdb.sh: PORT must be a number, got '$PORT'" >&2; exit 1; }
GDB=${GDB:-gdb-multiarch}
command -v "$GDB" >/dev/null || { echo "gdb.sh: $GDB not found (scripts/setup.sh installs gdb-multiarch)" >&2; exit 1; }
export HK_ROOT=$ROOT
exec "$GDB" -q -nx \
    -ex 'set architecture powerpc:common64' \
    -ex 'set endian big' \
    -ex "file $ELF" \
    -ex "source $ROOT/scripts/helpers.gdb" \
    -ex "target remote :$PORT" \
    "$@"
