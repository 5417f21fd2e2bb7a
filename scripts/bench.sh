#!/usr/bin/env bash
# Benchmarks, measured the same way every time:
#   scripts/bench.sh          full run (~3-5 min): writes docs/BENCHMARKS.md
#   scripts/bench.sh --quick  only checks the benchmark code still works (CI)
# Prints one Markdown table and one machine-readable line per figure: BENCH name value unit.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1

cargo build --release -q || { echo "bench: build failed"; exit 1; }
ELF=target/powerpc64-none/release/hashkernel
OUT=$(mktemp /tmp/bench.XXXXXX)
trap 'rm -f "$OUT"' EXIT

GUEST_CPU=unknown
kernel() { # runs the release kernel, keeps its BENCH lines
    local log
    log=$(bash scripts/run.sh "$ELF" --timeout 600 "$@" </dev/null 2>&1 | tr -d '\r')
    GUEST_CPU=$(sed -n 's/^  cpu: *\(PowerPC,[^ ]*\).*/\1/p' <<<"$log" | head -1)
    local rc=$?
    if ! grep -q 'hashkernel: exit status 0' <<<"$log"; then
        echo "bench: kernel run failed: $*"; grep -a -E 'bench:|Oops|panic|FAILED' <<<"$log" | head -5
        return 1
    fi
    grep -a '^BENCH ' <<<"$log" | tee -a "$OUT"
    return $rc
}

if ((QUICK)); then
    kernel bench=hash || exit 1
    kernel --smp 2 bench=vmalloc || exit 1
    n=$(grep -c '^BENCH hash\.lockfree\.insert_primary [0-9]' "$OUT")
    ((n == 1)) || { echo "bench: no insert_primary figure"; exit 1; }
    echo "bench: quick check ok ($(wc -l <"$OUT") figures)"
    exit 0
fi

# 1. Clean build of the kernel (core/alloc included), in its own target directory.
rm -rf target/bench-clean
t0=$EPOCHREALTIME
CARGO_TARGET_DIR=target/bench-clean cargo build --release -q || exit 1
build_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
rm -rf target/bench-clean
echo "BENCH build.clean_release $build_s s" | tee -a "$OUT"

# 2. Path lengths (PMC5), lock-free and locked in the same run.
kernel --smp 2 bench=hash || exit 1
# 3. Fault throughput, 1/2/4 vCPUs, disjoint and shared pages, both designs.
for n in 1 2 4; do kernel --smp "$n" bench=smp || exit 1; done
# 4. vmalloc/ioremap cost.
kernel --smp 2 bench=vmalloc || exit 1
# 5. Boot time, host wall clock, median of 5 (release kernel).
for fw in vof slof; do
    line=$(scripts/boot-time.sh -n 5 --release --firmware "$fw" | tail -1)
    b=$(sed -n 's/.*start->banner \([0-9.]*\)s.*/\1/p' <<<"$line")
    x=$(sed -n 's/.*start->QEMU exit \([0-9.]*\)s.*/\1/p' <<<"$line")
    echo "BENCH boot.$fw.to_banner $b s" | tee -a "$OUT"
    echo "BENCH boot.$fw.to_exit $x s" | tee -a "$OUT"
done
# 6. The default run (cargo run), QEMU start to exit.
line=$(scripts/boot-time.sh -n 5 --release | tail -1)
echo "BENCH default_run.to_exit $(sed -n 's/.*start->QEMU exit \([0-9.]*\)s.*/\1/p' <<<"$line") s" | tee -a "$OUT"

val() { awk -v k="$1" '$2 == k {print $3; exit}' "$OUT"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }'; }

{
echo "# Benchmarks"
echo
echo "Written by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). $(qemu-system-ppc64 --version | head -1);"
echo "guest CPU $GUEST_CPU (pseries, TCG); host: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores."
echo "Release kernel. Under TCG the time base runs at 512 MHz of host wall-clock time."
echo
echo "## Instructions per hash fault (PMC5, vector to rfid, the hcall counts as one)"
echo
echo "| path | lock-free (Rust) | lock-free + asm fast path | locked (2003) |"
echo "|---|---|---|---|"
for p in insert_primary insert_secondary insert_after_eviction hpte_update busy_reexecution bad_access segment_miss segment_miss_then_hash; do
    echo "| $p | $(val hash.lockfree.$p) | $(val hash.asm.$p) | $(val hash.locked.$p) |"
done
echo
echo "The fast path (\`hash_page=asm\`, boot/hashfast.S) handles only the plain insert into a"
echo "primary group with room; every other path falls through to the Rust path, so its other rows"
echo "include the fast path's checks before the hand-over."

echo
echo "## Fault throughput (faults/s: every CPU stores once to each page of fresh vmalloc areas, so every touch is a hash fault that inserts an HPTE; time-base measured)"
echo
echo "The host has $(nproc) cores, so at most $(nproc) vCPU threads run at once: 4 vCPUs share $(nproc) host threads."
echo
echo "| vCPUs | pages | lock-free total | ratio to 1 vCPU | locked total | ratio to 1 vCPU |"
echo "|---|---|---|---|---|---|"
for pages in disjoint shared; do
    for n in 1 2 4; do
        lf=$(val fault_rate.lockfree.$pages.smp$n.total); lk=$(val fault_rate.locked.$pages.smp$n.total)
        echo "| $n | $pages | $lf | $(ratio "$lf" "$(val fault_rate.lockfree.$pages.smp1.total)") | $lk | $(ratio "$lk" "$(val fault_rate.locked.$pages.smp1.total)") |"
    done
done
echo
echo "BUSY re-executions behind the shared-page figures are in the raw lines below."
echo
echo "## Other figures"
echo
echo "| figure | value |"
echo "|---|---|"
for k in vmalloc_touch_vfree_per_page ioremap_iounmap boot.vof.to_banner boot.vof.to_exit boot.slof.to_banner boot.slof.to_exit default_run.to_exit build.clean_release; do
    echo "| $k | $(awk -v k="$k" '$2 == k {print $3, $4; exit}' "$OUT") |"
done
echo
echo "## Targets"
echo
lf=$(val hash.lockfree.insert_primary); lk=$(val hash.locked.insert_primary); la=$(val hash.asm.insert_primary)
r2=$(ratio "$(val fault_rate.lockfree.disjoint.smp2.total)" "$(val fault_rate.lockfree.disjoint.smp1.total)")
dr=$(awk -v k=default_run.to_exit '$2 == k {print $3; exit}' "$OUT")
verdict() { if awk "BEGIN{exit !($1)}"; then echo met; else echo "**missed**"; fi; }
echo "| target | measured | |"
echo "|---|---|---|"
echo "| lock-free insert ≤ locked insert (instructions) | $lf vs $lk | $(verdict "$lf <= $lk") |"
echo "| lock-free insert ≤ 200 instructions, vector to rfid (Rust path) | $lf | $(verdict "$lf <= 200") |"
echo "| the same with the assembly fast path (\`hash_page=asm\`) | $la | $(verdict "$la <= 200") |"
echo "| disjoint-page throughput, 2 vCPUs ≥ 1.8 × 1 vCPU | ${r2}× | $(verdict "$r2 >= 1.8") |"
echo "| default \`cargo run\` (VOF) QEMU start → exit < 5 s | $dr s | $(verdict "$dr < 5") |"
echo
cat <<'TXT'
**The 200-instruction target: the Rust path misses it, the assembly fast path meets it.** About 100 of the
instructions are the generic exception entry and exit in `boot/vectors.S`: the 12-instruction
vector, the frame build in `exc_common` (r0–r13, CR, LR, CTR, XER, SRR0/1, DAR, DSISR; r14–r31
are saved only when an oops needs them) and the restore before `rfid`. The rest is Rust:
`exception_entry` bookkeeping (nesting depth, innermost frame for the watchdog), the dispatch, the
region check, the three-level lock-free walk with acquire loads, the VSID scramble and hash,
`hash_pte` (the asm take, HPTE word construction, the `H_ENTER` wrapper) and the release publish.
For comparison, Linux 2.6.12's path for the same fault is ≈362 instructions
(`shared/notes/linux-2.6-path-length.md`, ≈212 of them assembly). What the 2003 author listed as
future work closes the gap: `boot/hashfast.S` is a hand-written real-mode fast path for 0x300
that keeps its state in the per-CPU area (no frame, no translation switch, no Rust call), walks
the tables, does the same ldarx/stdcx. step and calls `H_ENTER` directly, and hands anything but
a plain insert into a primary group to the Rust path (`hash_page=asm`; the kernel tests all pass
in that mode and `hash_page::asm_fast_path_inserts_like_the_rust_path` checks it leaves exactly
what the Rust path leaves). It stays opt-in: the default keeps one implementation of the
protocol, the one the model check and the host tests cover. The instruction count
is exact under TCG (the same number on every run); note that PMC5 under TCG credits instructions
per translated block, so a faulting block's earlier instructions may be missed by one or two.

**Why the throughput does not scale under TCG.** QEMU 7.2 delivers every guest exception with
its big lock held (`accel/tcg/cpu-exec.c:700`: `qemu_mutex_lock_iothread();
cc->tcg_ops->do_interrupt(cpu);`), and the pseries hypercalls (`sc 1`, so `H_ENTER`) run inside
that delivery. Every hash fault therefore passes through one global lock twice (the 0x300 and the
`H_ENTER`), whatever the guest does: even disjoint pages, which share no guest data at all, slow
down when a second vCPU faults. What the guest controls is whether it adds a lock of its own on
top: compare the lock-free and locked columns of the same run. On hardware (or KVM) the
hypervisor call does not serialise the CPUs and the guest side is the limit.
TXT
echo
echo "## Raw lines"
echo
echo '```'
cat "$OUT"
echo '```'
} > docs/BENCHMARKS.md
sed -n '/^## Instructions/,/^## Raw lines/p' docs/BENCHMARKS.md | sed '$d'
echo "bench: wrote docs/BENCHMARKS.md"
