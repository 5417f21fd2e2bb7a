#!/usr/bin/env python3
"""The SMP part of scripts/bench.sh: reads what its runs left in a work directory, checks the
figures against each other, and writes BENCH lines and the Markdown of docs/BENCHMARKS.md.

    scripts/scaling-report.py WORK --insert N --vcpus "1 2 4 8" --cvcpus "1 2 4" --boots K
    scripts/scaling-report.py --self-test      the cross-checks on made-up runs (CI)

Files in WORK (TAG.lines: the kernel's BENCH lines; TAG.sched: scripts/qemu-sched.sh):
    ceilingN            bench=ceiling at N vCPUs
    smpN.B              bench=smp at N vCPUs, boot B of K (the ceiling interleaved with the faults)
    contN, contN.counts bench=contention at N vCPUs under the instruction counter (markers)
    contnpN             the same without the counter
    prof1, prof3        bench=faults at 2 vCPUs, bench.ms=300 and 900, under QEMU's lock
                        profiler (TAG.prof: `info sync-profile`)
    cede2, relax2       bench=faults at 2 vCPUs with bench.wait=cede and bench.wait=relax
    clockN, clockN.time bench=smp at N vCPUs under tools/insncount's mode=time: the host's clock
                        around the same windows (the second method for the ceiling fraction)

Writes WORK/scaling.lines (BENCH lines) and WORK/scaling.md. Exit status 1 when a cross-check
fails: the counter's 0x300 windows must equal the faults the kernel counted in the same
brackets, and an uncontended fault (one vCPU, or disjoint pages, or one page per vCPU in a
shared group, lock-free) must cost exactly the primary-insert path length (--insert).
"""
import argparse
import os
import re
import statistics
import sys

CONFIGS = [("lockfree", "disjoint"), ("lockfree", "shared"), ("locked", "disjoint"), ("locked", "shared")]
SCENARIOS = ["disjoint", "shared", "group"]

# What each QEMU 7.2 lock site is (QEMU source, at those lines).
SITES = {
    "accel/tcg/cpu-exec.c:700": "exception delivery, `cpu_handle_exception` → `do_interrupt`: the 0x300 and every hypercall (`sc 1` is an exception too)",
    "accel/tcg/cpu-exec.c:763": "`cpu_handle_interrupt`: the exit request `rfid` leaves behind",
    "target/ppc/helper_regs.c:250": "`cpu_interrupt_exittb`, called by `rfid` (`do_rfi`)",
    "target/ppc/excp_helper.c:2173": "`ppc_maybe_interrupt`, called by `rfid`'s MSR store (also H_CEDE, H_PROD)",
    "accel/tcg/tcg-accel-ops-mttcg.c:96": "the vCPU thread's loop after `cpu_exec` returns (a kick, queued work, a halt)",
    "util/main-loop.c:318": "the main loop (I/O thread)",
    "softmmu/cpus.c:423": "condition wait: a halted vCPU (here: ceded at a barrier) sleeping",
    "cpus-common.c:134": "queueing work on another vCPU (the TLB flush every H_REMOVE asks of all vCPUs)",
    "cpus-common.c:329": "running queued work (those TLB flushes)",
    "cpus-common.c:353": "running queued work (those TLB flushes)",
    "tcg/region.c:234": "`tcg_tb_lookup`: finding the faulting instruction's TB to restore the CPU state",
}


def read_lines(path):
    """BENCH lines -> {name: (value, {key: value}, text)}; BENCHTAG lines -> {tag: name}."""
    out, tags = {}, {}
    if not os.path.exists(path):
        return out, tags
    for line in open(path, errors="replace"):
        line = line.strip()
        f = line.split()
        if len(f) >= 3 and f[0] == "BENCHTAG":
            tags[int(f[1])] = f[2]
        elif len(f) >= 3 and f[0] == "BENCH":
            kv = dict(re.findall(r"(\w+)=([0-9x.a-f,]+)", line))
            try:
                v = float(f[2])
            except ValueError:
                v = None
            out[f[1]] = (v, kv, line)
    return out, tags


def read_sched(path):
    if not os.path.exists(path):
        return None
    for line in open(path):
        if line.startswith("SCHED "):
            kv = dict(re.findall(r"(\w+)=([0-9.,]+)", line))
            d = {k: float(v) for k, v in kv.items() if "," not in v}
            d["run"] = [float(x) for x in kv["run_s"].split(",")]
            d["wait"] = [float(x) for x in kv["wait_s"].split(",")]
            return d
    return None


def read_records(path, kind, key):
    """insncount lines of type `kind` -> {key(fields): the remaining fields as ints}."""
    out = {}
    if os.path.exists(path):
        for line in open(path):
            f = line.split()
            if f and f[0] == kind:
                out[key(f)] = tuple(int(x) for x in f[3:])
    return out


def read_counts(path):
    """insncount S lines -> {(tag, vector): (windows, min, max, sum)}."""
    return read_records(path, "S", lambda f: (int(f[1]), f[2]))


def read_time(path):
    """insncount mode=time K lines -> {(tag, vcpu): (spans, ns)}."""
    return read_records(path, "K", lambda f: (int(f[1]), int(f[2])))


def clock_check(W, n, bench, failures):
    """The ceiling fraction measured twice in one boot: by the kernel (time base, its windows)
    and by the host's monotonic clock (the timing plugin, between the same markers)."""
    L, tags = read_lines(f"{W}/clock{n}.lines")
    K = read_time(f"{W}/clock{n}.time")
    if not L or not K:
        return None
    byname = {v: t for t, v in tags.items()}
    rows, worst = [], 0.0

    def per_vcpu(name, key):
        """[(iterations, kernel window µs, host window µs, host spans)] per vCPU."""
        out = []
        for c in range(n):
            line = L.get(f"{name}.cpu{c}")
            t = K.get((byname.get(name, -1), c))
            if not line or not t:
                failures.append(f"clock check at {n} vCPUs: no {'kernel line' if not line else 'host time'} for {name} on vCPU {c}")
                return None
            out.append((int(line[1][key]), int(line[1]["busy_us"]), t[1] / 1000, t[0]))
        return out

    rates = {}
    for name, key in ((f"smp.ceiling_fault.smp{n}", "iterations"), (f"fault_rate.lockfree.disjoint.smp{n}", "resolved")):
        v = per_vcpu(name, key)
        if v is None:
            return None
        rounds = int(L[f"{name}.total"][1]["rounds"])
        for c, (it, kus, hus, spans) in enumerate(v):
            d = (hus - kus) / kus if kus else 1.0
            worst = max(worst, abs(d))
            if abs(d) > 0.02 or spans != rounds:
                failures.append(f"clock check: {name} vCPU {c}: kernel {kus} µs in {rounds} windows, host clock {hus:.0f} µs in {spans}")
            rows.append(f"| {n} | {name.split('.smp')[0]} | {c} | {it:,} | {kus / 1000:.1f} ms | {hus / 1000:.1f} ms | {d * 100:+.2f}% |")
        rates[name] = (sum(it / kus for it, kus, _, _ in v), sum(it / hus for it, _, hus, _ in v))
    (ck, ch), (fk, fh) = rates[f"smp.ceiling_fault.smp{n}"], rates[f"fault_rate.lockfree.disjoint.smp{n}"]
    fkern, fhost = fk / ck, fh / ch
    fwall = L[f"fault_rate.lockfree.disjoint.smp{n}.total"][0] / L[f"smp.ceiling_fault.smp{n}.total"][0]
    if abs(fhost - fkern) > 0.01:
        failures.append(f"clock check at {n} vCPUs: fraction {fkern:.3f} by the time base, {fhost:.3f} by the host's clock")
    bench(f"crosscheck.clock.smp{n}", f"{fhost:.3f}", "of the ceiling by the host's clock",
          f"time base: {fkern:.3f} from each vCPU's windows, {fwall:.3f} from the rounds' wall time; worst window-time difference {worst * 100:.2f}%")
    return rows, fkern, fhost, fwall


def read_profile(path):
    """`info sync-profile` -> {call site: (type, wait_s, count)}."""
    p = {}
    if not os.path.exists(path):
        return p
    for line in open(path):
        m = re.match(r"^(BQL mutex|mutex|condvar|rec_mutex)\s+(\[\s*\d+\]|0x[0-9a-f]+)\s+(\S+)\s+([0-9.]+)\s+(\d+)\s+([0-9.]+)", line)
        if m:
            p[m.group(3)] = (m.group(1), float(m.group(4)), int(m.group(5)))
    return p


def fmt_int(x):
    return f"{int(round(x)):,}"


def fr(x):
    return f"{x:.2f}"


def median(xs):
    return statistics.median(xs) if xs else 0.0


def report(W, insert, vcpus, cvcpus, boots):
    """Writes W/scaling.lines and W/scaling.md; returns the failed cross-checks."""
    a = argparse.Namespace(insert=insert, boots=boots)
    out_lines, md, failures = [], [], []

    def bench(name, value, unit, extra=""):
        out_lines.append(f"BENCH {name} {value} {unit}" + (f" ({extra})" if extra else ""))

    # ------------------------------------------------------------ the ceiling
    ceil = {}   # n -> {name: median over the boots}
    for n in vcpus:
        boots_ = [read_lines(f"{W}/ceiling{n}.{b}.lines")[0] for b in range(1, a.boots + 1)]
        boots_ = [L for L in boots_ if f"ceiling_fault.smp{n}.total" in L]
        if not boots_:
            failures.append(f"no ceiling at {n} vCPUs")
            continue
        ceil[n] = {k: (median([L[k][0] for L in boots_ if k in L]),) for k in boots_[0]}
        for b, L in enumerate(boots_, 1):
            out_lines += [t.replace(f"BENCH {k}", f"BENCH boot{b}.{k}", 1) for k, (_, _, t) in L.items()]
        for k in sorted(ceil[n]):
            if k.endswith(".total"):
                bench(k, f"{ceil[n][k][0]:.0f}", "iter/s", f"median of {len(boots_)} boots: {' '.join(f'{L[k][0]:.0f}' for L in boots_ if k in L)}")

    smp = {n: [read_lines(f"{W}/smp{n}.{b}.lines")[0] for b in range(1, a.boots + 1)] for n in vcpus}
    for n in vcpus:
        for b, lines in enumerate(smp[n], 1):
            if f"smp.ceiling_fault.smp{n}.total" not in lines:
                failures.append(f"bench=smp boot {b} at {n} vCPUs left no figures")
            for name, (_, _, t) in lines.items():
                out_lines.append(t.replace(f"BENCH {name}", f"BENCH boot{b}.{name}", 1))

    def smp_vals(n, key):
        return [l[key][0] for l in smp.get(n, []) if key in l]

    md.append("## SMP scaling against the platform's own ceiling")
    md.append("")
    md.append("QEMU 7.2 delivers every guest exception with its big lock (the BQL) held, and on `pseries` a")
    md.append("hypercall is such an exception; `rfid` takes the lock again. So no fault path can scale better")
    md.append("than the same loop shape with nothing of ours in it. **The ceiling** (`bench=ceiling`, `ceiling_fault`")
    md.append("in the figures): the disjoint fault benchmark's own loop — each vCPU stores once to each of 2048")
    md.append("pages of its own area, each store a real data storage interrupt — with the 0x300 vector's branch")
    md.append("patched to `exc_fault_ceiling` (boot/vectors.S): it checks DAR against the next record, makes")
    md.append("that record's `H_ENTER` (the HPTE hash_page would insert, computed before the window), and")
    md.append("returns; the store re-executes and QEMU finds the entry. That is an exception that returns at")
    md.append("once plus one hypercall, in a hash fault's shape: the failed translation, the 0x300, the")
    md.append("`H_ENTER`, the `rfid`, the second translation; the kernel's part (frame, walk, PTE take and")
    md.append("publish, hash, counters: 147 − 38 instructions) is all that is missing. Beside it, the first")
    md.append("wave's proxies: the **system-call ceiling** (a system call whose vector goes straight back,")
    md.append("`exc_ceiling`, plus one `H_READ` of the bolted HPTE of the kernel's first page), each half")
    md.append("alone, and the **DSI ceiling** (a real data storage interrupt through the hash fault's own entry")
    md.append("and exit around the same `H_READ`, the store skipped: `Design::Ceiling`). The system-call")
    ratios = [ceil[n][f"ceiling.smp{n}.total"][0] / ceil[n][f"ceiling_fault.smp{n}.total"][0] for n in vcpus
              if n in ceil and ceil[n].get(f"ceiling_fault.smp{n}.total", (0,))[0]]
    md.append("ceiling is no bound on a hash fault: it runs " + (f"{min(ratios):.1f}–{max(ratios):.1f}" if ratios else "?")
              + "× as many iterations per second as the ceiling (below).")
    md.append("Every figure comes from *windows*: each vCPU brackets its own work between two barriers")
    md.append("with the time base and its own counters; a round's wall time runs from the first window's start")
    md.append("to the last one's end. Waiting vCPUs give their host thread up (`H_CEDE`, woken by `H_PROD`).")
    md.append("")
    md.append(f"Medians of {a.boots} boots each; the last column is the second measurement of the same ceiling,")
    md.append("interleaved with the faults in the `bench=smp` boots below.")
    md.append("")
    md.append("| vCPUs | ceiling, iterations/s (all vCPUs) | per vCPU | × 1 vCPU | ceiling, interleaved with the faults | system-call ceiling | exception alone | `H_READ` alone | DSI ceiling |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    c1 = ceil.get(vcpus[0], {}).get(f"ceiling_fault.smp{vcpus[0]}.total", (0,))[0] or 0 if vcpus else 0
    for n in vcpus:
        if n not in ceil:
            continue
        L = ceil[n]
        c = L[f"ceiling_fault.smp{n}.total"][0]
        inter = median(smp_vals(n, f"smp.ceiling_fault.smp{n}.total"))
        md.append(f"| {n} | {fmt_int(c)} | {fmt_int(c / n)} | {fr(c / c1) if c1 else '-'} | {fmt_int(inter)} | {fmt_int(L[f'ceiling.smp{n}.total'][0])} | "
                  f"{fmt_int(L[f'ceiling_trap.smp{n}.total'][0])} | {fmt_int(L[f'ceiling_hcall.smp{n}.total'][0])} | {fmt_int(L[f'ceiling_dsi.smp{n}.total'][0])} |")
    md.append("")

    # ------------------------------------------------------------ faults against the ceiling
    frac = {}    # (mode, kind, n) -> list of per-boot fractions of the same boot's ceiling
    rate = {}    # (mode, kind, n) -> list of per-boot resolved/s
    dsifrac = {}
    scfrac = {}
    for n in vcpus:
        for b, L in enumerate(smp[n]):
            ck = f"smp.ceiling_fault.smp{n}.total"
            dk = f"smp.ceiling_dsi.smp{n}.total"
            sk = f"smp.ceiling.smp{n}.total"
            if ck not in L:
                continue
            for mode, kind in CONFIGS:
                k = f"fault_rate.{mode}.{kind}.smp{n}.total"
                if k in L:
                    rate.setdefault((mode, kind, n), []).append(L[k][0])
                    frac.setdefault((mode, kind, n), []).append(L[k][0] / L[ck][0])
                    if mode == "lockfree" and kind == "disjoint" and dk in L:
                        dsifrac.setdefault(n, []).append(L[k][0] / L[dk][0])
                    if mode == "lockfree" and kind == "disjoint" and sk in L:
                        scfrac.setdefault(n, []).append(L[k][0] / L[sk][0])
    for (mode, kind, n), xs in sorted(frac.items(), key=lambda x: (x[0][2], x[0][0], x[0][1])):
        bench(f"fraction.{mode}.{kind}.smp{n}", f"{median(xs):.3f}", "of the ceiling",
              f"median of {len(xs)} boots: {' '.join(f'{x:.3f}' for x in xs)}; resolved/s {' '.join(fmt_int(r) for r in rate[(mode, kind, n)])}")
    for n, xs in dsifrac.items():
        bench(f"fraction_dsi.lockfree.disjoint.smp{n}", f"{median(xs):.3f}", "of the DSI ceiling", f"median of {len(xs)} boots")
    for n, xs in scfrac.items():
        bench(f"fraction_syscall.lockfree.disjoint.smp{n}", f"{median(xs):.3f}", "of the system-call ceiling", f"median of {len(xs)} boots")

    md.append("### Faults against the ceiling")
    md.append("")
    md.append("`bench=smp`: every vCPU stores once to each of 2048 pages — its own area (*disjoint*), or one")
    md.append("area all vCPUs walk from different offsets (*shared*) — and each store to a page without an")
    md.append("HPTE is a hash fault; between rounds the pages lose their HPTEs again (outside the windows). The")
    md.append("figure is resolved faults (HPTEs installed or updated) per second. Each boot measures the")
    passes = sorted({int(L[f"smp.passes.smp{n}"][0]) for n in vcpus for L in smp[n] if f"smp.passes.smp{n}" in L})
    md.append(f"system-call ceiling, the DSI ceiling, the ceiling and the four configurations in turn, {'/'.join(map(str, passes)) or '?'} passes over them, so that")
    md.append("whatever else the host runs moves the ceiling and the faults alike; the fraction is each boot's")
    md.append(f"faults/s over its own ceiling, median of {a.boots} boots (range in brackets).")
    md.append("")
    md.append("| vCPUs | ceiling | lock-free disjoint | lock-free shared | locked disjoint | locked shared | lock-free disjoint / DSI ceiling | lock-free disjoint / system-call ceiling | lock-free disjoint scaling / ceiling scaling |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    n0 = vcpus[0] if vcpus else 1
    lf1 = median(rate.get(("lockfree", "disjoint", n0), [0]))
    ce1 = median(smp_vals(n0, f"smp.ceiling_fault.smp{n0}.total")) if vcpus else 0
    sc1 = median(smp_vals(n0, f"smp.ceiling.smp{n0}.total")) if vcpus else 0
    goal = []
    for n in vcpus:
        cells = []
        for mode, kind in CONFIGS:
            xs = frac.get((mode, kind, n))
            if not xs:
                cells.append("-")
                continue
            cells.append(f"{fmt_int(median(rate[(mode, kind, n)]))}/s: **{fr(median(xs))}** [{fr(min(xs))}–{fr(max(xs))}]")
        ce = median(smp_vals(n, f"smp.ceiling_fault.smp{n}.total"))
        # (faults(N)/faults(1)) / (ceiling(N)/ceiling(1)), from the per-boot fractions, which
        # the host's load moves far less than the rates themselves.
        f1 = median(frac.get(("lockfree", "disjoint", n0), [0]))
        scal = median(frac.get(("lockfree", "disjoint", n), [0])) / f1 if f1 else 0
        bench(f"scaling_vs_ceiling.lockfree.disjoint.smp{n}", f"{scal:.3f}", "", "fraction(N) / fraction(1): (faults(N)/faults(1)) / (ceiling(N)/ceiling(1))")
        goal.append((n, median(frac.get(("lockfree", "disjoint", n), [0])), scal))
        md.append(f"| {n} | {fmt_int(ce)}/s | " + " | ".join(cells) + f" | {fr(median(dsifrac.get(n, [0])))} | {fr(median(scfrac.get(n, [0])))} | {fr(scal)} |")
    md.append("")
    met = bool(goal) and all(f >= 0.9 for _, f, _ in goal)
    met_scal = bool(goal) and all(s >= 0.9 for _, _, s in goal)
    md.append(f"**Target: lock-free disjoint ≥ 0.9 of the ceiling at every vCPU count — {'met' if met else 'missed'}**"
              f" ({', '.join(f'{n}: {f:.2f}' for n, f, _ in goal)}). "
              f"Normalised to one vCPU (how the faults scale against how the ceiling scales) it is "
              f"{'met' if met_scal else 'missed'} ({', '.join(f'{n}: {s:.2f}' for n, _, s in goal)}).")
    bench("target.fraction_of_ceiling", "met" if met else "missed", "", " ".join(f"smp{n}={f:.3f}" for n, f, _ in goal))
    md.append("")
    # The second method: the host's clock around the same windows.
    checks = [(n, clock_check(W, n, bench, failures)) for n in vcpus]
    checks = [(n, c) for n, c in checks if c]
    if checks:
        md.append("**Cross-check with the host's clock.** One more `bench=smp` boot per vCPU count below, under")
        md.append("tools/insncount's `mode=time`: the plugin puts a callback on the kernel's marker instructions")
        md.append("only (each phase's windows carry a tag, `BENCHTAG` 200–206) and sums the host's monotonic time")
        md.append("between a window's start and end markers per vCPU, so the same windows are timed by a clock")
        md.append("outside the guest, read by QEMU's host thread instead of the guest's `mftb`. The fraction from")
        md.append("each clock is Σ over vCPUs of (iterations / own window time), faults over ceiling.")
        md.append("")
        md.append("| vCPUs | phase | vCPU | iterations | window time, time base | window time, host clock | difference |")
        md.append("|---|---|---|---|---|---|---|")
        for n, (rows, _, _, _) in checks:
            md.extend(rows)
        md.append("")
        md.append("Lock-free disjoint faults as a fraction of the ceiling in those boots: "
                  + "; ".join(f"{n} vCPU{'s' if n > 1 else ''}: {fh:.3f} by the host's clock, {fk:.3f} by the time base "
                              f"({fw:.3f} from the rounds' wall time, as in the table above)" for n, (_, fk, fh, fw) in checks) + ".")
        md.append("")

    # The same in time per iteration, one vCPU, from the same boots (medians).
    d1 = median(smp_vals(n0, f"smp.ceiling_dsi.smp{n0}.total"))
    if ce1 and d1 and lf1 and sc1:
        md.append(f"Per iteration on {n0} vCPU: a system-call-ceiling iteration takes {1e6 / sc1:.2f} µs, a DSI-ceiling iteration "
                  f"{1e6 / d1:.2f} µs, a ceiling iteration {1e6 / ce1:.2f} µs, a lock-free fault {1e6 / lf1:.2f} µs. The ceiling itself, against one vCPU: "
                  + ", ".join(f"{n} vCPUs ×{median(smp_vals(n, f'smp.ceiling_fault.smp{n}.total')) / ce1:.2f}" for n in vcpus if n != n0) + ".")
        md.append("")

    # ------------------------------------------------------------ contention, in instructions
    md.append("### Contention in guest instructions (exact counter, not time)")
    md.append("")
    md.append("`bench=contention`: 500 rounds; in each, every vCPU stores at once (barrier release) to its")
    md.append("pages: 8 of its own (*disjoint*), the one page all vCPUs share (*shared*), or one page per vCPU")
    md.append("with all of them hashing to the same primary HPTE group (*group*: pages in different segments,")
    md.append("`mm::hpte::page_for_group`, placed with `vmalloc_range`). Each vCPU brackets its stores with a")
    md.append("marker, so tools/insncount counts every exception window of exactly those stores, and the")
    md.append("kernel's counters in the same brackets give the resolved faults (HPTEs inserted or updated).")
    md.append("*insns/resolved* = all 0x300 window instructions ÷ resolved faults; the other columns per")
    md.append("resolved fault. *windows = faults*: the counter's 0x300 windows equal the faults the kernel")
    md.append("counted (a cross-check of the brackets). The last column is the same run without the counter")
    md.append("(which slows guest code, not QEMU, and so changes how often vCPUs collide).")
    md.append("")
    md.append("| vCPUs | pages | design | insns/resolved | windows/resolved | BUSY re-exec./resolved | lost reservations/resolved | H_CONFER/resolved | spurious updates/resolved | longest window | windows = faults | BUSY/resolved without the counter |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in cvcpus:
        L, tags = read_lines(f"{W}/cont{n}.lines")
        NP, _ = read_lines(f"{W}/contnp{n}.lines")
        S = read_counts(f"{W}/cont{n}.counts")
        if not L:
            failures.append(f"no contention figures at {n} vCPUs")
            continue
        for sc in SCENARIOS:
            for design in ("lockfree", "locked"):
                name = f"contention.{design}.{sc}.smp{n}"
                if name not in L:
                    failures.append(f"no {name}")
                    continue
                v, kv, _ = L[name]
                tag = int(kv["tag"])
                resolved = int(kv["resolved"]) if "resolved" in kv else int(v)
                faults = int(kv["faults"])
                win, lo, hi, total = S.get((tag, "0x300"), (0, 0, 0, 0))
                ok = win == faults
                if not ok:
                    failures.append(f"{name}: the counter saw {win} 0x300 windows, the kernel counted {faults} faults")
                per = total / resolved if resolved else 0
                # Nothing contends here: every fault is one primary insert, exactly that path.
                if design == "lockfree" and (sc != "shared" or n == 1) and not (lo == hi == a.insert):
                    failures.append(f"{name}: uncontended lock-free faults took {lo}-{hi} instructions, the primary insert {a.insert}")
                busy, lost, conf, upd = (int(kv[k]) for k in ("busy", "lost", "confers", "updates"))
                np_busy = ""
                if name in NP:
                    nv, nkv, _ = NP[name]
                    np_busy = f"{int(nkv['busy']) / int(nv):.2f}" if nv else "-"
                bench(f"insns_per_resolved.{design}.{sc}.smp{n}", f"{per:.1f}", "insns",
                      f"windows={win} faults={faults} resolved={resolved} busy={busy} lost={lost} confers={conf} updates={upd} longest={hi}")
                md.append(f"| {n} | {sc} | {design} | **{per:.1f}** | {win / resolved:.2f} | {busy / resolved:.2f} | {lost / resolved:.3f} | "
                          f"{conf / resolved:.3f} | {upd / resolved:.2f} | {fmt_int(hi)} | {'yes' if ok else '**no**'} ({fmt_int(win)}) | {np_busy} |")
    md.append("")

    # ------------------------------------------------------------ the lock profile
    P1, P3 = read_profile(f"{W}/prof1.prof"), read_profile(f"{W}/prof3.prof")
    L1, _ = read_lines(f"{W}/prof1.lines")
    L3, _ = read_lines(f"{W}/prof3.lines")
    k = "profile.lockfree.disjoint.smp2.total"
    if P1 and P3 and k in L1 and k in L3:
        r1, r3 = int(L1[k][1]["resolved"]), int(L3[k][1]["resolved"])
        w1, w3 = int(L1[k][1]["wall_us"]), int(L3[k][1]["wall_us"])
        h1 = L1.get("profile.harness.smp2", (0,))[0] or 0
        h3 = L3.get("profile.harness.smp2", (0,))[0] or 0
        dr, dw, dh = r3 - r1, (w3 - w1) / 1e6, h3 - h1
        md.append("### Where the time goes: QEMU's lock profiler")
        md.append("")
        md.append("`bench=faults` (lock-free faults on disjoint pages, nothing else) at 2 vCPUs, twice — 300 and")
        md.append("900 ms of windows — with QEMU's synchronisation profiler on from the first instruction")
        md.append("(`-S`, QMP `sync-profile on`, `cont`; `-no-shutdown` keeps QEMU for `info sync-profile` after")
        md.append("the guest powered off: scripts/qmp.py). The difference between the two runs is the work of")
        md.append(f"{fmt_int(dr)} more faults ({dw:.2f} s more of windows) and {fmt_int(dh)} more harness hypercalls outside the")
        md.append("windows (mostly the `H_REMOVE` that makes each page fault again: one per fault): boot and set-up")
        md.append("cancel out. *wait* is the time spent acquiring the lock (the profiler does not time holding it).")
        md.append("")
        md.append("| lock | call site | what | acquisitions per fault | wait per fault | mean wait per acquisition |")
        md.append("|---|---|---|---|---|---|")
        rows = []
        for site in set(P1) | set(P3):
            t, ws3, c3 = P3.get(site, ("", 0.0, 0))
            t1, ws1, c1 = P1.get(site, (t, 0.0, 0))
            dc, dws = c3 - c1, ws3 - ws1
            if dc <= 0 or dc < 0.05 * dr:
                continue
            rows.append((t or t1, site, dc, dws))
        rows.sort(key=lambda x: (-x[2], x[1]))
        bql_per, bql_wait = 0.0, 0.0
        for t, site, dc, dws in rows:
            per = dc / dr
            if t == "BQL mutex":
                bql_per += per
                bql_wait += dws
            bench(f"lockprofile.{site}", f"{per:.3f}", "per fault", f"type={t.replace(' ', '_')} acquisitions={dc} wait_ns_per_fault={dws / dr * 1e9:.1f}")
            md.append(f"| {t} | `{site}` | {SITES.get(site, '')} | {per:.2f} | {dws / dr * 1e9:.0f} ns | {dws / dc * 1e9:.0f} ns |")
        fault_time = 2 * dw / dr if dr else 0
        md.append("")
        # The profiler's wait is every thread's, over the whole run: inside the windows and out
        # (the preparation's H_REMOVEs, cedes, wake-ups). So it bounds the windows' share of it
        # from one side only.
        wpf = bql_wait / dr if dr else 0
        if fault_time and wpf <= fault_time:
            share = f"so waiting for the BQL is at most {wpf / fault_time * 100:.0f}% of the window time (some of it falls outside the windows)"
        else:
            share = f"more than that, so at least {(wpf - fault_time) / wpf * 100 if wpf else 0:.0f}% of the waiting falls outside the windows"
        md.append(f"In all, **{bql_per:.2f} BQL acquisitions per fault**, and {wpf * 1e9:.0f} ns of waiting for it per fault, counted in every")
        md.append("thread over the whole run — inside the windows and outside them (the preparation's `H_REMOVE`s, the cedes and")
        md.append(f"wake-ups). The windows take {fault_time * 1e6:.2f} µs of vCPU time per fault (2 vCPUs × {dw:.2f} s ÷ {fmt_int(dr)} faults); {share}.")
        bench("lockprofile.bql_per_fault", f"{bql_per:.2f}", "acquisitions", f"wait_ns_per_fault={bql_wait / dr * 1e9:.0f} fault_us={fault_time * 1e6:.3f}")
        md.append("")
        # Cross-check, QEMU's count against the guest's: every exception QEMU delivers passes
        # cpu-exec.c:700 once (interrupts go through cpu_handle_interrupt instead), and the guest
        # counted its own: each 0x300 (faults, BUSY re-executions included), one hypercall per
        # resolved fault (H_ENTER for an insert, H_PROTECT for an update; an eviction would add
        # three more and break the equality, but a disjoint page has a group to itself), every
        # H_CONFER, every segment miss, and the harness's hypercalls outside the windows.
        def d(key):
            return int(L3[k][1].get(key, 0)) - int(L1[k][1].get(key, 0))
        df = d("faults") if "faults" in L3[k][1] else dr
        guest = df + dr + d("confers") + d("dseg") + int(dh)
        site = "accel/tcg/cpu-exec.c:700"
        qemu = P3.get(site, ("", 0.0, 0))[2] - P1.get(site, ("", 0.0, 0))[2]
        same = abs(qemu - guest) <= 0.001 * guest
        bench("lockprofile.crosscheck.exceptions", f"{qemu}", "acquisitions", f"at {site}; the guest's own count of the exceptions it caused: {guest} "
              f"(0x300s {df} + hypercalls of resolved faults {dr} + H_CONFERs {d('confers')} + segment misses {d('dseg')} + harness hypercalls {int(dh)})")
        md.append(f"**Cross-check, QEMU's count against the guest's:** every exception QEMU delivers takes the BQL at `{site}` once; between")
        md.append(f"the two runs that site counted {fmt_int(qemu)} acquisitions, and the guest counted {fmt_int(guest)} exceptions of its own making —")
        md.append(f"{fmt_int(df)} 0x300s, {fmt_int(dr)} hypercalls of the resolved faults (one `H_ENTER` each), "
                  f"{d('confers')} `H_CONFER`s, {d('dseg')} segment misses and {fmt_int(int(dh))} harness hypercalls"
                  f" ({'equal' if qemu == guest else ('within 0.1%' if same else '**they differ**')}).")
        md.append("")
        if not same:
            failures.append(f"lock profile: {qemu} BQL acquisitions at {site}, but the guest caused {guest} exceptions")
    else:
        failures.append("no lock profile (prof1/prof3)")

    # ------------------------------------------------------------ per vCPU
    md.append("### Per vCPU")
    md.append("")
    md.append("Each vCPU's own windows (`bench=smp`, the boot with the median lock-free disjoint fraction at")
    md.append("each vCPU count): resolved faults per second of its *own* window time, its window time, and")
    md.append("how the host scheduled its thread over the whole boot (scripts/qemu-sched.sh, from")
    md.append("/proc/…/schedstat: time on a core, time runnable without one), with what the rest of the host")
    md.append("took meanwhile.")
    md.append("")
    md.append("| vCPUs | vCPU | lock-free disjoint: resolved/s (own windows) | its window time / wall | lock-free shared: resolved faults | thread on a core | thread waiting for a core | rest of the host |")
    md.append("|---|---|---|---|---|---|---|---|")
    for n in vcpus:
        boots = [(b, L) for b, L in enumerate(smp[n], 1) if f"fault_rate.lockfree.disjoint.smp{n}.total" in L and f"smp.ceiling_fault.smp{n}.total" in L]
        if not boots:
            continue
        boots.sort(key=lambda bl: bl[1][f"fault_rate.lockfree.disjoint.smp{n}.total"][0] / bl[1][f"smp.ceiling_fault.smp{n}.total"][0])
        b, L = boots[len(boots) // 2]
        sch = read_sched(f"{W}/smp{n}.{b}.sched")
        for c in range(n):
            d = L.get(f"fault_rate.lockfree.disjoint.smp{n}.cpu{c}")
            s = L.get(f"fault_rate.lockfree.shared.smp{n}.cpu{c}")
            if not d:
                continue
            busy, wall = int(d[1]["busy_us"]), int(d[1]["wall_us"])
            run = f"{sch['run'][c]:.2f} s" if sch else "-"
            wait = f"{sch['wait'][c]:.2f} s" if sch else "-"
            rest = (f"{sch['host_busy_s'] - sch['qemu_run_s']:.2f} of {sch['wall_s'] * sch['host_cpus']:.2f} core-seconds "
                    f"({sch['wall_s']:.2f} s × {int(sch['host_cpus'])})") if sch and c == 0 else ""
            md.append(f"| {n if c == 0 else ''} | {c} | {fmt_int(d[0])} | {busy / 1000:.0f} / {wall / 1000:.0f} ms | {fmt_int(int(s[1]['resolved'])) if s else '-'} | {run} | {wait} | {rest} |")
            bench(f"per_vcpu.smp{n}.cpu{c}", fmt_int(d[0]).replace(",", ""), "resolved/s", f"busy_us={busy} wall_us={wall} boot={b}"
                  + (f" run_s={sch['run'][c]:.3f} wait_s={sch['wait'][c]:.3f}" if sch else ""))
    md.append("")
    Lc, _ = read_lines(f"{W}/cede2.lines")
    Lr, _ = read_lines(f"{W}/relax2.lines")
    kc = "profile.lockfree.disjoint.smp2"
    if f"{kc}.cpu0" in Lc and f"{kc}.cpu0" in Lr:
        sc_, sr = read_sched(f"{W}/cede2.sched"), read_sched(f"{W}/relax2.sched")
        md.append("How the harness's waiting vCPUs wait. The same 2-vCPU fault run (`bench=faults`, 300 ms) with the")
        md.append("harness's waiters ceding (the default) and spinning with `or 1,1,1` (`bench.wait=relax`, as")
        md.append("`smp::Barrier` and the earlier benchmark did: each such instruction ends QEMU's translation")
        md.append("block with `EXCP_HLT`, and the vCPU thread takes the BQL on its way back in):")
        md.append("")
        md.append("| waiters | resolved/s, all | vCPU 0: resolved/s, window time | vCPU 1: resolved/s, window time | threads on a core / waiting |")
        md.append("|---|---|---|---|---|")
        for label, Lx, sx in (("cede (`H_CEDE`/`H_PROD`)", Lc, sc_), ("spin with `or 1,1,1`", Lr, sr)):
            c0, c1_ = Lx[f"{kc}.cpu0"], Lx[f"{kc}.cpu1"]
            md.append(f"| {label} | {fmt_int(Lx[f'{kc}.total'][0])} | {fmt_int(c0[0])}, {int(c0[1]['busy_us']) / 1000:.0f} ms | "
                      f"{fmt_int(c1_[0])}, {int(c1_[1]['busy_us']) / 1000:.0f} ms | "
                      + (f"{sx['run'][0]:.2f}+{sx['run'][1]:.2f} s / {sx['wait'][0]:.2f}+{sx['wait'][1]:.2f} s" if sx else "-") + " |")
            bench(f"wait_{'relax' if 'or' in label else 'cede'}.smp2.total", fmt_int(Lx[f'{kc}.total'][0]).replace(",", ""), "resolved/s",
                  f"cpu0_busy_us={c0[1]['busy_us']} cpu1_busy_us={c1_[1]['busy_us']}")
        md.append("")
        cr, rr = Lc[f"{kc}.total"][0], Lr[f"{kc}.total"][0]
        if cr:
            md.append(f"Here spinning instead of ceding changed the resolved faults per second by {(rr - cr) / cr * 100:+.0f}%. A spinning")
            md.append("waiter's host thread stays runnable and competes for a host core with the vCPU that works, so")
            md.append("what spinning costs depends on how busy the host's cores are (the host conditions below).")
            md.append("")

    # host conditions over every SMP boot
    scheds = [read_sched(os.path.join(W, f)) for f in sorted(os.listdir(W)) if f.endswith(".sched")]
    scheds = [s for s in scheds if s]
    if scheds:
        rest = sum(s["host_busy_s"] - s["qemu_run_s"] for s in scheds)
        cap = sum(s["wall_s"] * s["host_cpus"] for s in scheds)
        run = sum(sum(s["run"]) for s in scheds)
        wait = sum(sum(s["wait"]) for s in scheds)
        md.append(f"Host conditions over these {len(scheds)} boots: other processes used {rest / cap * 100:.0f}% of the host's "
                  f"{int(scheds[0]['host_cpus'])} cores; the vCPU threads spent {wait / (run + wait) * 100 if run + wait else 0:.0f}% of their runnable "
                  "time waiting for a core.")
        bench("host.other_load", f"{rest / cap:.3f}", "of the host", f"boots={len(scheds)} vcpu_wait_share={wait / (run + wait) if run + wait else 0:.3f}")
        md.append("")

    open(f"{W}/scaling.lines", "w").write("\n".join(out_lines) + "\n")
    open(f"{W}/scaling.md", "w").write("\n".join(md) + "\n")
    return failures


def self_test():
    """The cross-checks on made-up runs: consistent figures pass; a counter window more or less
    than the kernel's faults, or an uncontended fault longer than the primary insert, fail."""
    import tempfile
    base = {
        "ceiling1.1.lines": "BENCH ceiling.smp1.total 1000 iter/s (iterations=1000)\nBENCH ceiling_trap.smp1.total 2000 iter/s\n"
                          "BENCH ceiling_hcall.smp1.total 3000 iter/s\nBENCH ceiling_dsi.smp1.total 600 iter/s\n"
                          "BENCH ceiling_fault.smp1.total 450 iter/s\n",
        "smp1.1.lines": "BENCH smp.ceiling.smp1.total 1000 iter/s (iterations=1000)\nBENCH smp.ceiling_dsi.smp1.total 600 iter/s\n"
                        "BENCH smp.ceiling_fault.smp1.total 450 iter/s\n"
                        + "".join(f"BENCH fault_rate.{m}.{k}.smp1.total 400 resolved/s (resolved=400)\n"
                                  f"BENCH fault_rate.{m}.{k}.smp1.cpu0 400 resolved/s (resolved=400 busy_us=1000 wall_us=1000)\n"
                                  for m, k in CONFIGS),
        "cont1.lines": "".join(f"BENCHTAG {64 + d * 8 + i} contention.{dn}.{sc}.smp1\n"
                               f"BENCH contention.{dn}.{sc}.smp1 10 resolved (faults=10 busy=0 lost=0 confers=0 updates=0 tag={64 + d * 8 + i})\n"
                               for d, dn in enumerate(("lockfree", "locked")) for i, sc in enumerate(SCENARIOS)),
        "cont1.counts": "".join(f"S {64 + d * 8 + i} 0x300 10 {c} {c} {10 * c}\n" for d, c in ((0, 144), (1, 274)) for i in range(3)),
    }
    base["clock1.lines"] = ("BENCHTAG 202 smp.ceiling_fault.smp1\nBENCHTAG 203 fault_rate.lockfree.disjoint.smp1\n"
                            "BENCH smp.ceiling_fault.smp1.cpu0 500 iter/s (iterations=1000 busy_us=2000 wall_us=2000)\n"
                            "BENCH smp.ceiling_fault.smp1.total 500 iter/s (iterations=1000 wall_us=2000 rounds=4)\n"
                            "BENCH fault_rate.lockfree.disjoint.smp1.cpu0 450 resolved/s (resolved=900 busy_us=2000 wall_us=2000)\n"
                            "BENCH fault_rate.lockfree.disjoint.smp1.total 450 resolved/s (resolved=900 wall_us=2000 rounds=3)\n")
    base["clock1.time"] = "K 202 0 4 2001000\nK 203 0 3 1999000\n"
    prof = "Type Object Call site Wait Time (s) Count Average (us)\nBQL mutex  0x1  accel/tcg/cpu-exec.c:700  {w}  {c}  0.1\n"
    # 200 more faults, each a 0x300 and an H_ENTER, 100 more harness hypercalls: 500 exceptions.
    base["prof1.lines"] = "BENCH profile.lockfree.disjoint.smp2.total 1 resolved/s (resolved=100 faults=100 wall_us=1000)\nBENCH profile.harness.smp2 100 hcalls\n"
    base["prof3.lines"] = "BENCH profile.lockfree.disjoint.smp2.total 1 resolved/s (resolved=300 faults=300 wall_us=3000)\nBENCH profile.harness.smp2 200 hcalls\n"
    base["prof1.prof"] = prof.format(w="0.001", c=200)
    base["prof3.prof"] = prof.format(w="0.003", c=700)
    cases = [
        ("consistent", {}, []),
        ("a window the kernel did not count", {"cont1.counts": base["cont1.counts"].replace("S 65 0x300 10 ", "S 65 0x300 11 ")},
         ["contention.lockfree.shared.smp1: the counter saw 11 0x300 windows, the kernel counted 10 faults"]),
        ("an uncontended fault off the insert path", {"cont1.counts": base["cont1.counts"].replace("S 64 0x300 10 144 144", "S 64 0x300 10 144 150")},
         ["contention.lockfree.disjoint.smp1: uncontended lock-free faults took 144-150 instructions, the primary insert 144"]),
        ("an exception QEMU delivered that the guest did not cause", {"prof3.prof": prof.format(w="0.003", c=701)},
         ["lock profile: 501 BQL acquisitions at accel/tcg/cpu-exec.c:700, but the guest caused 500 exceptions"]),
        ("the host's clock disagreeing with the time base", {"clock1.time": "K 202 0 4 2001000\nK 203 0 3 2100000\n"},
         ["clock check: fault_rate.lockfree.disjoint.smp1 vCPU 0: kernel 2000 µs in 3 windows, host clock 2100 µs in 3",
          "clock check at 1 vCPUs: fraction 0.900 by the time base, 0.858 by the host's clock"]),
        ("a window the host's clock did not see", {"clock1.time": "K 202 0 3 2001000\nK 203 0 3 1999000\n"},
         ["clock check: smp.ceiling_fault.smp1 vCPU 0: kernel 2000 µs in 4 windows, host clock 2001 µs in 3"]),
    ]
    bad = 0
    for name, change, want in cases:
        with tempfile.TemporaryDirectory() as d:
            for f, text in {**base, **change}.items():
                open(os.path.join(d, f), "w").write(text)
            got = report(d, 144, [1], [1], 1)
            per_fault = open(os.path.join(d, "scaling.lines")).read()
        # The fraction is over the fault-shaped ceiling (400/450), the system-call one beside it.
        ok = (got == want and "lockprofile.bql_per_fault 2.50" in per_fault
              and "BENCH fraction.lockfree.disjoint.smp1 0.889 " in per_fault
              and "BENCH fraction_syscall.lockfree.disjoint.smp1 0.400 " in per_fault
              and "BENCH target.fraction_of_ceiling missed" in per_fault
              and "BENCH crosscheck.clock.smp1 " in per_fault)
        print(f"self-test {'ok' if ok else 'FAILED'}: {name}" + ("" if ok else f": got {got}, want {want}"))
        bad += not ok
    return 1 if bad else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--insert", type=int, required=True)
    ap.add_argument("--vcpus", default="1 2 4 8")
    ap.add_argument("--cvcpus", default="1 2 4")
    ap.add_argument("--boots", type=int, default=3)
    a = ap.parse_args()
    failures = report(a.work, a.insert, [int(x) for x in a.vcpus.split()], [int(x) for x in a.cvcpus.split()], a.boots)
    for f in failures:
        print(f"bench: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
