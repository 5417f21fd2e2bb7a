#!/usr/bin/env python3
"""hashkernel trace dumps -> Chrome trace-event JSON and a self-contained SVG timeline.

  scripts/trace.py json LOG [-o OUT.json] [--elf ELF]
  scripts/trace.py svg LOG [-o OUT.svg] [--window auto|all|FROM:TO] [--title TEXT] [--elf ELF]
  scripts/trace.py check LOG --expect deadlock|completes|oops|valid [--json OUT.json] [--svg OUT.svg] [--elf ELF]
  scripts/trace.py validate JSON [--deadlock-cpu N]
  scripts/trace.py text LOG [--elf ELF]

LOG is the console output of a run with `trace=...` (`cargo run -- trace=all ... | tee LOG`), or
the output of scripts/helpers.gdb `trace-dump`: the kernel prints its rings between
`trace: dump begin:` and `trace: dump end:` on exit, on an oops and inside the deadlock report
(src/trace/ring.rs). The last complete dump in LOG is used.

json      Chrome trace-event format (chrome://tracing, https://ui.perfetto.dev): one track per
          CPU, exceptions as nested slices, page_table_lock holds and spins as slices,
          hypervisor calls as slices (fast-path ones as instants), hash_page outcomes, PTE
          take/publish, vmalloc/vfree, the decrementer and the watchdog as instants, and a
          "hash faults/s" counter. Slices still open when the dump was taken (a deadlocked CPU,
          a CPU parked by the system reset that stops the machine) have no end event and say
          why in args.open.
svg       the same as a timeline image: one lane per CPU, nested slices stacked, long idle gaps
          (the watchdog's 200 ms) drawn as breaks. --window auto shows the deadlock if there is
          one (from the thread-context lock acquire to the watchdog), else the last lock hold in
          which an interrupt's hash fault completed, else everything; FROM:TO are microseconds
          from the first event.
check     the tests of scripts/ci.sh: --expect deadlock requires a dump taken inside the deadlock
          report, the rings of every CPU, and on the stuck CPU a thread-context lock acquire,
          then a decrementer, then a 0x300 inside it, then the lock contended, with no release
          between (and the system reset that stopped it); --expect completes requires the 0x300
          inside a lock hold to complete, and no deadlock; --expect oops a dump taken by an oops
          with the faulting exception still open on that CPU; --expect valid any dump with
          events. All of them validate the JSON.
validate  checks a JSON file: it parses, every B has its E on the same track in order, and
          every B without one is marked (args.open).
text      one line per event, decoded.

Exit status 0 on success, 1 when a check fails or the log has no complete dump, 2 on misuse.
"""

import argparse
import bisect
import json
import math
import re
import subprocess
import sys
from xml.sax.saxutils import escape

# ------------------------------------------------------------------------------------------
# Vocabulary (src/trace/event.rs is the reference)

EVENTS = {
    "xe": "exception entry", "xx": "exception exit", "ho": "hash_page outcome", "pt": "PTE take",
    "pp": "PTE publish", "hc": "hcall", "hb": "hcall begin", "he": "hcall end",
    "la": "lock acquire", "lc": "lock contended", "lr": "lock release", "va": "vmalloc",
    "vf": "vfree", "dc": "decrementer", "wd": "watchdog", "mk": "mark",
}
OUTCOMES = ["inserted_primary", "inserted_secondary", "updated", "inserted_after_eviction", "busy",
            "lost_reservation", "denied", "hv_busy", "eviction_retry", "refused", "all_bolted", "none"]
MARKS = {1: "irqtest start", 2: "irqtest end", 3: "test mark", 4: "recording stopped (trace.stop)"}
VECTORS = {
    0x100: "system reset", 0x200: "machine check", 0x300: "data storage", 0x380: "data segment",
    0x400: "instruction storage", 0x480: "instruction segment", 0x500: "external",
    0x600: "alignment", 0x700: "program", 0x800: "FP unavailable", 0x900: "decrementer",
    0x980: "hypervisor decrementer", 0xa00: "doorbell", 0xc00: "system call", 0xd00: "trace",
    0xf00: "performance monitor",
}
HCALLS = {0x04: "H_REMOVE", 0x08: "H_ENTER", 0x0c: "H_READ", 0x18: "H_PROTECT",
          0x58: "H_PUT_TERM_CHAR", 0xe0: "H_CEDE", 0xe4: "H_CONFER", 0xe8: "H_PROD",
          0x31c: "H_SET_MODE", 0x380: "H_SIGNAL_SYS_RESET", 0xf000: "KVMPPC_H_RTAS"}
PTE_FLAGS = [(0x0001, "PRESENT"), (0x0002, "USER"), (0x0004, "EXEC"), (0x0008, "GUARDED"),
             (0x0010, "COHERENT"), (0x0020, "NO_CACHE"), (0x0040, "WRITETHRU"), (0x0080, "DIRTY"),
             (0x0100, "ACCESSED"), (0x0200, "RW"), (0x0400, "HASHPTE"), (0x0800, "BUSY")]


class DumpError(Exception):
    pass


def pte_str(v):
    flags = "|".join(n for bit, n in PTE_FLAGS if v & bit) or "none"
    s = "%#x %s pfn=%#x" % (v, flags, v >> 16)
    if v & 0x400:
        s += " slot=%s%d" % ("S" if v & 0x8000 else "P", (v >> 12) & 7)
    return s


def lock_who(c):
    if c & 0xffff == 0:
        return None
    cpu, depth = (c & 0xffff) - 1, c >> 16
    return "CPU %d, %s" % (cpu, "thread context" if depth == 0 else "exception depth %d" % depth)


def s64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


# ------------------------------------------------------------------------------------------
# Parsing

class Ev:
    __slots__ = ("cpu", "idx", "tb", "mn", "depth", "c", "a", "b")

    def __init__(self, cpu, idx, tb, mn, depth, c=0, a=0, b=0):
        self.cpu, self.idx, self.tb, self.mn, self.depth, self.c, self.a, self.b = cpu, idx, tb, mn, depth, c, a, b

    def __repr__(self):
        return "Ev(%d#%d %s d%d c=%#x a=%#x b=%#x)" % (self.cpu, self.idx, self.mn, self.depth, self.c, self.a, self.b)


class Dump:
    def __init__(self):
        self.header = {}
        self.cpus = {}          # cpu -> dict(recorded, overwritten, torn, tb0)
        self.events = {}        # cpu -> [Ev]
        self.sites = {}
        self.locks = {}
        self.hcalls = dict(HCALLS)
        self.in_deadlock_report = False
        self.symbols = None     # Symbols, with --elf

    @property
    def tb_hz(self):
        return int(self.header.get("tb_hz", 512000000))

    @property
    def reason(self):
        return self.header.get("reason", "?")

    @property
    def stuck(self):
        s = self.header.get("stuck", "-")
        return int(s) if s.isdigit() else None

    def all_events(self):
        return [e for cpu in sorted(self.events) for e in self.events[cpu]]

    def t0(self):
        firsts = [evs[0].tb for evs in self.events.values() if evs]
        return min(firsts) if firsts else 0

    def us(self, tb):
        return (tb - self.t0()) * 1e6 / self.tb_hz

    def lock_name(self, addr):
        return self.locks.get(addr, "lock %#x" % addr)

    def sym(self, addr):
        return self.symbols.name(addr) if self.symbols else "%#x" % addr


LINE_RE = re.compile(r"^T(\d+) \+(\d+) ([a-z]{2}) (\d+)((?: [0-9a-f]+){0,3})$")
CPU_RE = re.compile(r"^trace: cpu (\d+): (\d+) events recorded, (\d+) overwritten, (\d+) torn, tb0 ([0-9a-f]+)$")


def parse(text):
    """The last complete dump in `text` (a console log)."""
    lines = [l.rstrip("\r") for l in text.split("\n")]
    begins = [i for i, l in enumerate(lines) if l.startswith("trace: dump begin:")]
    if not begins:
        raise DumpError("no 'trace: dump begin:' line: was the run started with trace=...?")
    for start in reversed(begins):
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("trace: dump end:")), None)
        if end is not None:
            break
    else:
        raise DumpError("the dump never ends ('trace: dump end:' missing): the run died while dumping")
    d = Dump()
    for kv in lines[start][len("trace: dump begin:"):].split():
        k, _, v = kv.partition("=")
        d.header[k] = v
    d.in_deadlock_report = (any("DEADLOCK DETECTED" in l for l in lines[:start])
                            and any(l.startswith("=====") for l in lines[end + 1:end + 3]))
    cpu = None
    prev = 0
    for n, l in enumerate(lines[start + 1:end], start + 2):
        m = CPU_RE.match(l)
        if m:
            cpu = int(m.group(1))
            rec, over, torn, tb0 = int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5), 16)
            d.cpus[cpu] = dict(recorded=rec, overwritten=over, torn=torn, tb0=tb0)
            d.events[cpu] = []
            prev = tb0
            continue
        m = LINE_RE.match(l)
        if m:
            c = int(m.group(1))
            if c != cpu:
                raise DumpError("line %d: event of CPU %d inside CPU %s's ring" % (n, c, cpu))
            prev += int(m.group(2))
            words = [int(w, 16) for w in m.group(5).split()] + [0, 0, 0]
            if m.group(3) not in EVENTS:
                raise DumpError("line %d: unknown event '%s'" % (n, m.group(3)))
            evs = d.events[cpu]
            evs.append(Ev(cpu, len(evs), prev, m.group(3), int(m.group(4)), *words[:3]))
            continue
        if l.startswith("trace: site "):
            a, _, s = l[len("trace: site "):].partition(" ")
            d.sites[int(a, 16)] = s
        elif l.startswith("trace: lock "):
            a, _, s = l[len("trace: lock "):].partition(" ")
            d.locks[int(a, 16)] = s
        elif l.startswith("trace: hcall "):
            a, _, s = l[len("trace: hcall "):].partition(" ")
            d.hcalls[int(a, 16)] = s
        elif l.startswith("trace:") or not l.strip():
            continue
        else:
            raise DumpError("line %d inside the dump is not part of it: %r" % (n, l[:80]))
    ncpus = int(d.header.get("cpus", len(d.cpus)))
    missing = [c for c in range(ncpus) if c not in d.cpus]
    if missing:
        raise DumpError("the dump has no ring for CPU(s) %s" % missing)
    return d


class Symbols:
    """Function names for addresses, from `nm -n -C ELF`."""

    def __init__(self, elf):
        out = subprocess.run(["nm", "-n", "-C", elf], capture_output=True, text=True, check=True).stdout
        self.addrs, self.names = [], []
        for l in out.splitlines():
            p = l.split(" ", 2)
            if len(p) == 3 and p[1] in "tTwW":
                self.addrs.append(int(p[0], 16))
                self.names.append(p[2])

    def name(self, a):
        i = bisect.bisect_right(self.addrs, a) - 1
        if i < 0 or a - self.addrs[i] > 1 << 20:
            return "%#x" % a
        n = re.sub(r"^<?hashkernel::", "", self.names[i])
        return "%s+%d (%#x)" % (n, a - self.addrs[i], a)


# ------------------------------------------------------------------------------------------
# The timeline: slices and instants per CPU

class Slice:
    def __init__(self, cpu, start, name, cat, args, key=None):
        self.cpu, self.start, self.end = cpu, start, None
        self.name, self.cat, self.args, self.key = name, cat, args, key
        self.level = 0
        self.bseq = self.eseq = None   # where its begin and end fall in the CPU's event order
        self.open = None          # why it never ended
        self.synthetic = False    # begun before the ring's oldest event


class Instant:
    def __init__(self, cpu, ts, name, cat, args, scope="t", level=0):
        self.cpu, self.ts, self.name, self.cat, self.args, self.scope, self.level = cpu, ts, name, cat, args, scope, level
        self.seq = None


class Timeline:
    def __init__(self, dump):
        self.dump = dump
        self.slices = []
        self.instants = []
        self.faults = {}          # cpu -> [tb of each 0x300 outcome]
        for cpu in sorted(dump.events):
            self._cpu(cpu, dump.events[cpu])

    def _cpu(self, cpu, evs):
        d = self.dump
        stack = []
        first = evs[0].tb if evs else 0
        synthesized = []

        def push(e, name, cat, args, key):
            s = Slice(cpu, e.tb, name, cat, args, key)
            s.level = len(stack)
            s.bseq = (e.idx, 1, s.level)
            stack.append(s)
            self.slices.append(s)
            return s

        def close(e, key, extra=None, name=None, cat=None):
            """Ends the innermost open slice with `key`; one begun before the ring if none."""
            for i in range(len(stack) - 1, -1, -1):
                if stack[i].key == key:
                    for inner in stack[i + 1:]:
                        inner.end = e.tb
                        inner.eseq = (e.idx, 0, -inner.level)
                        inner.args["closed_by"] = "the end of an enclosing slice (its own end was not recorded)"
                    s = stack[i]
                    del stack[i:]
                    s.end = e.tb
                    s.eseq = (e.idx, 0, -s.level)
                    if extra:
                        s.args.update(extra)
                    return s
            # Its begin was overwritten (the ring wrapped): it enclosed everything before.
            for s in stack:
                s.end = e.tb
                s.eseq = (e.idx, 0, -s.level)
                s.args["closed_by"] = "an exit whose entry the ring no longer holds"
            stack.clear()
            s = Slice(cpu, first, name or str(key), cat or "unknown", dict(extra or {}), key)
            s.end = e.tb
            s.eseq = (e.idx, 0, 0)
            s.synthetic = True
            s.args["begun_before_trace"] = True
            synthesized.append(s)
            self.slices.append(s)
            return s

        for e in evs:
            if e.mn == "xe":
                vec = e.c
                push(e, "%#x %s" % (vec, VECTORS.get(vec, "exception")), "exception",
                     {"vector": "%#x" % vec, "dar": "%#x" % e.a, "nip": d.sym(e.b), "depth": e.depth}, ("exc", vec))
            elif e.mn == "xx":
                vec = e.c
                close(e, ("exc", vec), {"returned_to": d.sym(e.a)}, "%#x %s" % (vec, VECTORS.get(vec, "exception")), "exception")
            elif e.mn == "la":
                if stack and stack[-1].key == ("spin", e.a):
                    close(e, ("spin", e.a), {"acquired_after_us": round((e.tb - stack[-1].start) * 1e6 / d.tb_hz, 3)})
                push(e, "%s held" % d.lock_name(e.a), "lock",
                     {"lock": d.lock_name(e.a), "taken_at": d.sites.get(e.b, "%#x" % e.b) if e.b else "try_lock",
                      "taker": lock_who(e.c), "depth": e.depth}, ("lock", e.a))
            elif e.mn == "lc":
                holder = lock_who(e.c)
                push(e, "spin on %s" % d.lock_name(e.a), "spin",
                     {"lock": d.lock_name(e.a), "holder": holder or "(free again)",
                      "holder_took_it_at": d.sites.get(e.b, "%#x" % e.b) if e.b else "?", "depth": e.depth}, ("spin", e.a))
            elif e.mn == "lr":
                close(e, ("lock", e.a), None, "%s held" % d.lock_name(e.a), "lock")
            elif e.mn == "hb":
                name = d.hcalls.get(e.c, "hcall %#x" % e.c)
                push(e, name, "hcall", {"number": "%#x" % e.c, "r4": "%#x" % e.a, "r5": "%#x" % e.b}, ("hcall", e.c))
            elif e.mn == "he":
                name = d.hcalls.get(e.c, "hcall %#x" % e.c)
                close(e, ("hcall", e.c), {"status": s64(e.a), "ret_r4": "%#x" % e.b}, name, "hcall")
            else:
                i = self._instant(e, len(stack))
                i.seq = (e.idx, 2, 0)
                self.instants.append(i)
                if e.mn == "ho":
                    self.faults.setdefault(cpu, []).append(e.tb)
                    for s in reversed(stack):
                        if s.key == ("exc", 0x300):
                            s.args["outcome"] = OUTCOMES[e.c - 1] if 1 <= e.c <= len(OUTCOMES) else str(e.c)
                            if e.b:
                                s.args["verdict"] = "%#x (slow path)" % e.b
                            break
        # What is still open was never left: say why. A CPU other than the dumper that took the
        # system reset stopping the machine was parked inside everything it had open.
        stuck = d.stuck
        parked = str(cpu) != d.header.get("dumper") and any(s.key == ("exc", 0x100) for s in stack)
        for s in stack:
            if d.reason == "deadlock" and cpu == stuck:
                s.open = "deadlocked: CPU %d never returned from this (the dump was taken in the deadlock report)" % cpu
            elif parked:
                s.open = "parked: CPU %d was stopped inside this by the system reset (H_SIGNAL_SYS_RESET) before the dump" % cpu
            elif d.header.get("stopped") == "1":
                s.open = "stopped: still open when recording stopped (trace.stop=)"
            else:
                s.open = "still running when the dump was taken (%s)" % d.reason
            s.args["open"] = s.open
        # Slices synthesized for exits whose entries the ring lost enclose everything before
        # their exit, and the one found last encloses the ones found before it.
        if synthesized:
            n = len(synthesized)
            for k, s in enumerate(synthesized):
                s.level = n - 1 - k
                # Before everything else, the outermost first.
                s.bseq = (-1, 0, s.level)
            for s in self.slices:
                if s.cpu == cpu and not s.synthetic:
                    s.level += sum(1 for x in synthesized if s.eseq is not None and s.eseq <= x.eseq)
            for i in self.instants:
                if i.cpu == cpu:
                    i.level += sum(1 for x in synthesized if i.seq <= x.eseq)

    def _instant(self, e, level):
        d = self.dump
        a = {"depth": e.depth}
        if e.mn == "ho":
            name = "hash_page: " + (OUTCOMES[e.c - 1] if 1 <= e.c <= len(OUTCOMES) else str(e.c))
            a.update(ea="%#x" % e.a, verdict="%#x" % e.b)
            cat = "hash"
        elif e.mn == "pt":
            name, cat = "PTE take", "hash"
            a.update(pte_at="%#x" % (0xc000000000000000 | e.c), old=pte_str(e.a), new=pte_str(e.b))
        elif e.mn == "pp":
            name, cat = "PTE publish", "hash"
            a.update(pte_at="%#x" % (0xc000000000000000 | e.c), value=pte_str(e.a))
        elif e.mn == "hc":
            name, cat = d.hcalls.get(e.c, "hcall %#x" % e.c), "hcall"
            a.update(number="%#x" % e.c, status=s64(e.a), r4="%#x" % e.b)
        elif e.mn == "dc":
            name, cat = "decrementer", "timer"
            a.update(interrupted=d.sym(e.a))
        elif e.mn in ("va", "vf"):
            kind = ("ioremap" if e.mn == "va" else "iounmap") if e.c == 1 else ("vmalloc" if e.mn == "va" else "vfree")
            name, cat = "%s %#x" % (kind, e.a), "mm"
            a.update(address="%#x" % e.a)
            if e.mn == "va":
                a.update(pages=e.b)
        elif e.mn == "wd":
            ms = e.a * 1000.0 / d.tb_hz
            name, cat = "watchdog: CPU %d stuck %.0f ms" % (e.c, ms), "watchdog"
            a.update(stuck_cpu=e.c, stalled_ms=round(ms, 3), spinning_on=d.lock_name(e.b) if e.b else "-")
            return Instant(e.cpu, e.tb, name, cat, a, "g", level)
        elif e.mn == "mk":
            name, cat = "mark: " + MARKS.get(e.c, str(e.c)), "mark"
            a.update(a=e.a, b=e.b)
        else:
            name, cat = EVENTS.get(e.mn, e.mn), "other"
        return Instant(e.cpu, e.tb, name, cat, a, "t", level)


# ------------------------------------------------------------------------------------------
# Chrome trace-event JSON

def to_chrome(tl):
    d = tl.dump
    us = d.us
    out = [{"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "hashkernel (QEMU pseries)"}}]
    for cpu in sorted(d.events):
        out.append({"ph": "M", "pid": 1, "tid": cpu, "name": "thread_name", "args": {"name": "CPU %d" % cpu}})
        out.append({"ph": "M", "pid": 1, "tid": cpu, "name": "thread_sort_index", "args": {"sort_index": cpu}})
    # Per track, begins and ends in the order the CPU went through them (its ring's order;
    # within one event: the ends it causes, innermost first, then what it begins).
    items = []
    for s in tl.slices:
        items.append((s.cpu, s.bseq, s.start, "B", s))
        if s.end is not None:
            items.append((s.cpu, s.eseq, s.end, "E", s))
    for i in tl.instants:
        items.append((i.cpu, i.seq, i.ts, "i", i))
    items.sort(key=lambda x: x[:2])
    for cpu, _, ts, ph, o in items:
        ev = {"ph": ph, "pid": 1, "tid": cpu, "ts": round(us(ts), 4), "name": o.name, "cat": o.cat}
        if ph == "B":
            ev["args"] = o.args
        elif ph == "i":
            ev["s"] = o.scope
            ev["args"] = o.args
        out.append(ev)
    # hash faults/s: one counter, a series per CPU, over bins of about a hundredth of the trace.
    ts_all = [t for v in tl.faults.values() for t in v]
    if ts_all:
        t0, t1 = d.t0(), max(e.tb for e in d.all_events())
        bin_tb = max((t1 - t0) // 100, d.tb_hz // 100000)
        nb = (t1 - t0) // bin_tb + 1
        series = {cpu: [0] * nb for cpu in d.events}
        for cpu, v in tl.faults.items():
            for t in v:
                series[cpu][(t - t0) // bin_tb] += 1
        per_s = d.tb_hz / bin_tb
        last = None
        for k in range(nb):
            vals = {"CPU %d" % c: round(series[c][k] * per_s) for c in sorted(series)}
            if vals != last:
                out.append({"ph": "C", "pid": 1, "tid": 0, "ts": round(us(t0 + k * bin_tb), 4), "name": "hash faults/s", "args": vals})
                last = vals
    other = {
        "source": "hashkernel trace dump (src/trace, scripts/trace.py)",
        "reason": d.reason, "stuck_cpu": d.stuck, "tb_hz": d.tb_hz,
        "rings": {str(c): v for c, v in d.cpus.items()},
        "open_slices": [{"cpu": s.cpu, "name": s.name, "why": s.open} for s in tl.slices if s.end is None],
    }
    return {"traceEvents": out, "displayTimeUnit": "ns", "otherData": other}


def validate_chrome(doc, deadlock_cpu=None):
    """Problems with a trace-event document (empty list: valid)."""
    problems = []
    evs = doc.get("traceEvents") if isinstance(doc, dict) else None
    if not isinstance(evs, list):
        return ["no traceEvents list"]
    stacks = {}
    last_ts = {}
    for n, e in enumerate(evs):
        ph = e.get("ph")
        if ph not in ("B", "E", "i", "C", "M", "X"):
            problems.append("event %d: unknown phase %r" % (n, ph))
            continue
        if ph == "M":
            continue
        if not isinstance(e.get("ts"), (int, float)):
            problems.append("event %d: no numeric ts" % n)
            continue
        key = (e.get("pid"), e.get("tid"))
        if ph in ("B", "E"):
            if e["ts"] < last_ts.get(key, -math.inf):
                problems.append("event %d (%s %s): goes back in time on track %s" % (n, ph, e.get("name"), key))
            last_ts[key] = e["ts"]
        st = stacks.setdefault(key, [])
        if ph == "B":
            st.append((n, e))
        elif ph == "E":
            if not st:
                problems.append("event %d: E '%s' without a B on track %s" % (n, e.get("name"), key))
            elif st[-1][1].get("name") != e.get("name"):
                problems.append("event %d: E '%s' closes B '%s' on track %s" % (n, e.get("name"), st[-1][1].get("name"), key))
                st.pop()
            else:
                st.pop()
    for key, st in stacks.items():
        for n, b in st:
            why = (b.get("args") or {}).get("open")
            if not why:
                problems.append("event %d: B '%s' on track %s never ends and is not marked (args.open)" % (n, b.get("name"), key))
            elif deadlock_cpu is not None and key[1] != deadlock_cpu and not why.startswith("parked"):
                problems.append("event %d: B '%s' open on CPU %s, which is not the deadlocked CPU %d: %s" % (n, b.get("name"), key[1], deadlock_cpu, why))
    return problems


# ------------------------------------------------------------------------------------------
# The lock-hold scan (the same as src/trace/event.rs scan_lock_holds)

def scan_lock_holds(evs, lock):
    """(holds, holds with a completed nested fault, deadlock indexes or None, last completed
    hold as (acquire, release) indexes or None) for one CPU's events."""
    holds = completed_holds = 0
    deadlock = last_completed = None
    hold = dec = fault = None
    completed = False
    for e in evs:
        if e.mn == "la" and e.a == lock and e.depth == 0:
            hold, dec, fault, completed = e.idx, None, None, False
        elif e.mn == "lr" and e.a == lock and e.depth == 0 and hold is not None:
            holds += 1
            if completed:
                completed_holds += 1
                last_completed = (hold, e.idx)
            hold = None
        elif e.mn == "xe" and hold is not None and e.c == 0x900:
            dec = (e.idx, e.depth)
        elif e.mn == "xx" and e.c == 0x900 and dec is not None and dec[1] == e.depth:
            dec = fault = None
        elif e.mn == "xe" and e.c == 0x300 and dec is not None and e.depth > dec[1]:
            fault = (e.idx, e.depth)
        elif e.mn == "xx" and e.c == 0x300 and fault is not None and fault[1] == e.depth:
            fault, completed = None, True
        elif e.mn == "lc" and e.a == lock and hold is not None and dec and fault and deadlock is None:
            deadlock = (hold, dec[0], fault[0], e.idx)
    return holds, completed_holds, deadlock, last_completed


def page_table_lock(d):
    for a, n in d.locks.items():
        if n == "page_table_lock":
            return a
    return None


# ------------------------------------------------------------------------------------------
# SVG

COLORS = {
    ("exception", 0x900): "#f0a030", ("exception", 0x300): "#3a7bd5", ("exception", 0x380): "#2bb3a3",
    ("exception", 0x100): "#8a8f98", "exception": "#9b6fd1", "lock": "#43a047", "spin": "#e53935",
    "hcall": "#b0bec5", "hash": "#1d4f91", "mm": "#6d4c41", "timer": "#c77c00", "watchdog": "#b71c1c",
    "mark": "#555555", "other": "#777777",
}


def slice_color(s):
    if s.cat == "exception":
        return COLORS.get(("exception", s.key[1]), COLORS["exception"])
    return COLORS.get(s.cat, "#999999")


class TimeMap:
    """Time (ticks) to x, piecewise linear. When a linear axis would crowd the events together
    (a quarter of the gaps between them under 12 px), the longest gaps, each at least ten
    times the median gap, are drawn as fixed-width breaks instead (the 200 ms the watchdog
    waits, a timer interrupt the host delivered late), one by one until the rest spreads out."""

    BREAK_PX = 50

    def __init__(self, times, t_from, t_to, x0, width):
        pts = sorted(set([t_from, t_to] + [t for t in times if t_from <= t <= t_to]))
        span = max(t_to - t_from, 1)
        gaps = sorted(((b - a, a, b) for a, b in zip(pts, pts[1:])), reverse=True)
        med = gaps[len(gaps) // 2][0] if gaps else span
        short = gaps[len(gaps) * 3 // 4][0] if gaps else span
        self.breaks = []
        broken = 0
        for g, a, b in gaps:
            linear = span - broken
            scale = (width - self.BREAK_PX * len(self.breaks)) / max(linear, 1)
            if short * scale >= 12 or g <= 10 * max(med, 1) or width - self.BREAK_PX * (len(self.breaks) + 1) < width / 2:
                break
            self.breaks.append((a, b))
            broken += g
        self.breaks.sort()
        linear = span - broken
        avail = width - self.BREAK_PX * len(self.breaks)
        self.scale = avail / max(linear, 1)
        self.t_from, self.t_to, self.x0, self.width = t_from, t_to, x0, width

    def x(self, t):
        t = min(max(t, self.t_from), self.t_to)
        x = self.x0
        prev = self.t_from
        for a, b in self.breaks:
            if t <= a:
                break
            if t < b:
                return x + (a - prev) * self.scale + self.BREAK_PX * (t - a) / (b - a)
            x += (a - prev) * self.scale + self.BREAK_PX
            prev = b
        return x + (t - prev) * self.scale

    def segments(self):
        """Linear stretches: (t_start, t_end)."""
        segs, prev = [], self.t_from
        for a, b in self.breaks:
            segs.append((prev, a))
            prev = b
        segs.append((prev, self.t_to))
        return segs


def nice_step(span_us, px, min_px=90):
    want = span_us * min_px / max(px, 1)
    p = 10 ** math.floor(math.log10(max(want, 1e-6)))
    for m in (1, 2, 5, 10):
        if p * m >= want:
            return p * m
    return p * 10


def fmt_us(v):
    """A duration or time in µs, in the unit that suits it, to about four digits."""
    a = abs(v)
    if a >= 1e6:
        return "%.4g s" % (v / 1e6)
    if a >= 1000:
        return "%.4g ms" % (v / 1000)
    if a >= 1 or v == 0:
        return "%.4g µs" % v
    return "%.3g ns" % (v * 1000)


def fmt_tick(v, step):
    """Tick label for v µs on an axis ticked every `step` µs: enough decimals to tell
    neighbouring ticks apart."""
    unit, div = ("ms", 1000.0) if abs(v) >= 1000 else ("µs", 1.0)
    dec = max(0, int(math.ceil(-math.log10(step / div) - 1e-9)))
    return "%.*f %s" % (dec, v / div, unit)


def auto_window(tl):
    """(from, to, description) in ticks."""
    d = tl.dump
    lock = page_table_lock(d)
    evs_all = d.all_events()
    t_end = max(e.tb for e in evs_all)
    if lock is not None:
        for cpu in sorted(d.events):
            evs = d.events[cpu]
            _, _, dl, _ = scan_lock_holds(evs, lock)
            if dl:
                t_a = evs[dl[0]].tb
                before = [e.tb for e in evs if e.tb < t_a]
                t_from = before[-1] if before else t_a
                return t_from, t_end, "the deadlock on CPU %d" % cpu
        best = None
        for cpu in sorted(d.events):
            evs = d.events[cpu]
            _, _, _, last = scan_lock_holds(evs, lock)
            if last and (best is None or evs[last[1]].tb > best[1]):
                best = (evs[last[0]].tb, evs[last[1]].tb, cpu)
        if best:
            a, b, cpu = best
            m = max((b - a) // 8, d.tb_hz // 1000000)
            return a - m, b + m, "the last lock hold on CPU %d in which an interrupt's hash fault completed" % cpu
    return d.t0(), t_end, "the whole trace"


def to_svg(tl, window="auto", title=None, width=1400):
    d = tl.dump
    if window == "auto":
        t_from, t_to, what = auto_window(tl)
    elif window == "all":
        t_from, t_to, what = d.t0(), max(e.tb for e in d.all_events()), "the whole trace"
    else:
        m = re.match(r"^([0-9.]+):([0-9.]+)$", window)
        if not m:
            raise DumpError("--window: auto, all or FROM:TO in microseconds, not %r" % window)
        t_from = d.t0() + int(float(m.group(1)) * d.tb_hz / 1e6)
        t_to = d.t0() + int(float(m.group(2)) * d.tb_hz / 1e6)
        what = "%s µs to %s µs" % (m.group(1), m.group(2))
    if t_to <= t_from:
        t_to = t_from + 1
    left, right = 96, 28
    plot_w = width - left - right
    inside = lambda a, b: b >= t_from and a <= t_to
    slices = [s for s in tl.slices if inside(s.start, s.end if s.end is not None else t_to)]
    instants = [i for i in tl.instants if t_from <= i.ts <= t_to]
    times = [s.start for s in slices] + [s.end for s in slices if s.end is not None] + [i.ts for i in instants]
    tm = TimeMap(times, t_from, t_to, left, plot_w)
    row = 24
    cpus = sorted(d.events)
    lanes = {}
    y = 118
    for cpu in cpus:
        levels = [s.level for s in slices if s.cpu == cpu] or [0]
        h = (max(levels) + 1) * row + 34
        lanes[cpu] = (y, h)
        y += h + 14
    height = y + 150
    o = []
    add = o.append
    add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">' % (width, height, width, height))
    add('<defs><pattern id="spin" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="8" height="8" fill="#e53935"/><rect width="3" height="8" fill="#ffcdd2"/></pattern>'
        '<marker id="arrow" markerWidth="8" markerHeight="8" refX="6" refY="4" orient="auto">'
        '<path d="M0,0 L8,4 L0,8 z" fill="#b71c1c"/></marker></defs>')
    add('<rect width="100%" height="100%" fill="white"/>')
    title = title or "hashkernel trace: %s" % what
    add('<text x="%d" y="26" font-size="17" font-weight="bold">%s</text>' % (left - 80, escape(title)))
    sub = "dump: %s%s, %d CPU(s), time base %g MHz; showing %s (%s)" % (
        d.reason, "" if d.stuck is None else " (CPU %d stuck)" % d.stuck, len(cpus), d.tb_hz / 1e6, what,
        fmt_us((t_to - t_from) * 1e6 / d.tb_hz))
    add('<text x="%d" y="46" fill="#444">%s</text>' % (left - 80, escape(sub)))
    # Axis: ticks per linear stretch, breaks as zigzags labelled with their length.
    axis_y = 84
    add('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>' % (left, axis_y, left + plot_w, axis_y))
    base_us = (t_from - d.t0()) * 1e6 / d.tb_hz
    for a, b in tm.segments():
        xa, xb = tm.x(a), tm.x(b)
        if xb - xa < 30:
            continue
        a_us, b_us = (a - t_from) * 1e6 / d.tb_hz, (b - t_from) * 1e6 / d.tb_hz
        step = nice_step(b_us - a_us, xb - xa)
        k = math.ceil(a_us / step)
        while k * step <= b_us + 1e-9:
            t = t_from + k * step * d.tb_hz / 1e6
            x = tm.x(t)
            k += 1
            if any(abs(x - tm.x(ba)) < 34 or abs(x - tm.x(ba) - TimeMap.BREAK_PX) < 34 for ba, _ in tm.breaks):
                continue
            add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>' % (x, axis_y - 4, x, axis_y + 4))
            add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>' % (x, axis_y + 8, x, height - 150))
            add('<text x="%.1f" y="%d" text-anchor="middle" fill="#333" font-size="11">+%s</text>' % (x, axis_y - 8, escape(fmt_tick((k - 1) * step, step))))
    for a, b in tm.breaks:
        x = tm.x(a)
        w = TimeMap.BREAK_PX
        add('<rect x="%.1f" y="%d" width="%d" height="%d" fill="#f4f4f4"/>' % (x, axis_y - 20, w, height - 150 - axis_y + 20))
        zz = " ".join("%.1f,%d" % (x + w / 2 + (4 if i % 2 else -4), axis_y - 10 + i * 5) for i in range(5))
        add('<polyline points="%s" fill="none" stroke="#333" stroke-width="1.5"/>' % zz)
        add('<text x="%.1f" y="%d" text-anchor="middle" font-size="11" fill="#b71c1c">%s</text>' % (
            x + w / 2, axis_y + 22, escape("⋯ " + fmt_us((b - a) * 1e6 / d.tb_hz))))
    add('<text x="%d" y="%d" font-size="11" fill="#666">t = %s from the first event</text>' % (left, axis_y - 24, escape(fmt_us(base_us))))
    # Lanes.
    for cpu in cpus:
        ly, lh = lanes[cpu]
        add('<rect x="%d" y="%d" width="%d" height="%d" fill="#fafafa" stroke="#ddd"/>' % (left, ly, plot_w, lh))
        stuck = " (stuck)" if d.stuck == cpu and d.reason == "deadlock" else ""
        add('<text x="%d" y="%d" font-weight="bold">CPU %d</text>' % (8, ly + 18, cpu))
        if stuck:
            add('<text x="%d" y="%d" fill="#b71c1c" font-size="11">stuck</text>' % (8, ly + 34))
        if not any(s.cpu == cpu for s in slices) and not any(i.cpu == cpu for i in instants):
            add('<text x="%d" y="%d" fill="#888" font-size="11">no events in this window (this CPU ran no trace point then)</text>' % (left + 8, ly + 20))
        for s in (s for s in slices if s.cpu == cpu):
            end = s.end if s.end is not None else t_to
            x1, x2 = tm.x(s.start), tm.x(end)
            w = max(x2 - x1, 1.5)
            sy = ly + 6 + s.level * row
            fill = "url(#spin)" if s.cat == "spin" else slice_color(s)
            tip = "%s\n%s – %s%s\n%s" % (s.name, fmt_us(d.us(s.start)), "never" if s.end is None else fmt_us(d.us(s.end)),
                                          "" if s.end is None else " (%s)" % fmt_us((s.end - s.start) * 1e6 / d.tb_hz),
                                          "\n".join("%s: %s" % kv for kv in s.args.items()))
            opacity = ' fill-opacity="0.55"' if s.cat == "hcall" else ""
            add('<g><title>%s</title><rect x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s"%s stroke="%s"/></g>' % (
                escape(tip), x1, sy, w, row - 4, fill, opacity, "#b71c1c" if s.end is None else "none"))
            # The longest label that fits: name and what became of it, the name, the vector.
            full = s.name + (" — never returns" if s.end is None else "")
            if s.cat == "exception" and "outcome" in s.args:
                full += " → " + s.args["outcome"]
            candidates = [full, s.name, s.name.split(" ")[0] if s.cat == "exception" else s.name[:6]]
            label = next((c for c in candidates if w > 6.6 * len(c) + 8), None)
            if label:
                add('<text x="%.1f" y="%d" fill="%s">%s</text>' % (x1 + 4, sy + row - 9, "#111" if s.cat in ("hcall", "spin") else "white", escape(label)))
            if s.end is None:
                add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#b71c1c" stroke-width="2" marker-end="url(#arrow)"/>' % (
                    x2 - 18, sy + (row - 4) // 2, x2 + 6, sy + (row - 4) // 2))
            if s.synthetic:
                add('<text x="%.1f" y="%d" fill="#666" font-size="10">…</text>' % (x1 + 1, sy + 10))
        # Instants along the lane's bottom row; the ones worth reading get a label.
        iy = ly + lh - 14
        labelled_x = -1e9
        for i in sorted((i for i in instants if i.cpu == cpu), key=lambda i: i.ts):
            x = tm.x(i.ts)
            col = COLORS.get(i.cat, "#777")
            tip = "%s @ %s\n%s" % (i.name, fmt_us(d.us(i.ts)), "\n".join("%s: %s" % kv for kv in i.args.items()))
            add('<g><title>%s</title><path d="M%.1f,%d l4,8 l-8,0 z" fill="%s"/></g>' % (escape(tip), x, iy, col))
            if i.cat in ("watchdog", "mark", "timer", "mm") or i.name.startswith("hash_page:"):
                if x - labelled_x > 90:
                    add('<text x="%.1f" y="%d" font-size="10" fill="%s">%s</text>' % (x + 5, iy + 8, col, escape(i.name)))
                    labelled_x = x
    # Legend and notes.
    ly = height - 132
    items = [("#f0a030", "0x900 decrementer"), ("#3a7bd5", "0x300 data storage (hash fault)"), ("#2bb3a3", "0x380 segment miss"),
             ("#8a8f98", "0x100 system reset"), ("#43a047", "page_table_lock held"), ("url(#spin)", "spinning on the lock"),
             ("#b0bec5", "hypervisor call")]
    x = left
    for col, name in items:
        add('<rect x="%d" y="%d" width="14" height="12" fill="%s" rx="2"/>' % (x, ly, col))
        add('<text x="%d" y="%d" font-size="11">%s</text>' % (x + 18, ly + 10, escape(name)))
        x += 26 + 7 * len(name)
    notes = [
        "Slices nest as the CPU nested them: thread context at the top of a lane, each interrupt one row further down. "
        "Triangles: instant events (PTE take/publish, hash_page outcome, decrementer, vmalloc/vfree, watchdog).",
        "A red outline and arrow: a slice that never ended before the dump. Grey bands with ⋯: idle time left out of the scale. "
        "Hover for details (vector, DAR, NIP, lock holder and call site, hcall status, PTE bits).",
        "Generated by scripts/trace.py from the kernel's own trace dump (src/trace); the same data as the Chrome trace-event JSON.",
    ]
    for k, n in enumerate(notes):
        add('<text x="%d" y="%d" font-size="11" fill="#555">%s</text>' % (left, ly + 34 + 18 * k, escape(n)))
    add("</svg>")
    return "\n".join(o) + "\n"


# ------------------------------------------------------------------------------------------
# check / text

def check(d, tl, expect, say):
    problems = []
    ncpus = int(d.header.get("cpus", 0))
    say("dump: reason=%s stuck=%s dumper=%s cpus=%d, events per CPU: %s" % (
        d.reason, d.stuck, d.header.get("dumper"), ncpus, ", ".join("CPU %d %d" % (c, len(v)) for c, v in sorted(d.events.items()))))
    if expect in ("valid", "oops"):
        if not any(d.events.values()):
            problems.append("the dump holds no events")
        if expect == "oops":
            dumper = int(d.header.get("dumper", -1))
            if d.reason != "oops":
                problems.append("the dump was not taken by an oops (reason=%s)" % d.reason)
            opened = [s for s in tl.slices if s.end is None and s.cpu == dumper and s.cat == "exception"]
            if not opened:
                problems.append("no exception left open on the CPU that oopsed (CPU %d)" % dumper)
            else:
                say("CPU %d oopsed inside %s (DAR %s), still open in the dump: %s" % (
                    dumper, opened[-1].name, opened[-1].args.get("dar"), opened[-1].open))
        return problems
    lock = page_table_lock(d)
    if lock is None:
        problems.append("the dump names no page_table_lock (no lock events: was trace=lock or all on?)")
        return problems
    if expect == "deadlock":
        if d.reason != "deadlock" or d.stuck is None:
            problems.append("the dump is not a deadlock dump (reason=%s stuck=%s)" % (d.reason, d.stuck))
            return problems
        if not d.in_deadlock_report:
            problems.append("the dump is not inside the deadlock report (between 'DEADLOCK DETECTED' and its closing line)")
        evs = d.events.get(d.stuck, [])
        if not evs:
            problems.append("the stuck CPU %d's ring is empty" % d.stuck)
            return problems
        holds, done, dl, _ = scan_lock_holds(evs, lock)
        if not dl:
            problems.append("CPU %d: no thread-context acquire -> 0x900 -> 0x300 -> contended without a release between" % d.stuck)
        else:
            a, dec, f, c = (evs[i] for i in dl)
            say("CPU %d: page_table_lock acquired in thread context at %s (%s), decrementer entry %s later, "
                "0x300 entry (DAR %#x) %s later, contended %s later; no release between" % (
                    d.stuck, fmt_us(d.us(a.tb)), d.sites.get(a.b, "?"), fmt_us((dec.tb - a.tb) * 1e6 / d.tb_hz),
                    f.a, fmt_us((f.tb - dec.tb) * 1e6 / d.tb_hz), fmt_us((c.tb - f.tb) * 1e6 / d.tb_hz)))
            if lock_who(c.c) != "CPU %d, thread context" % d.stuck:
                problems.append("the contended event names holder %s, not CPU %d in thread context" % (lock_who(c.c), d.stuck))
            after = evs[dl[3] + 1:]
            if any(e.mn == "lr" and e.a == lock for e in after) or any(e.mn == "xx" and e.c == 0x300 for e in after):
                problems.append("CPU %d released the lock or left the 0x300 after contending: not a deadlock" % d.stuck)
            if ncpus > 1:
                if not any(e.mn == "xe" and e.c == 0x100 for e in after):
                    problems.append("no system reset (0x100) on CPU %d after the contention: the watchdog did not capture it" % d.stuck)
                else:
                    say("CPU %d: then the system reset (0x100) that stopped it; its ring was dumped by CPU %s" % (d.stuck, d.header.get("dumper")))
            if not any(e.mn == "wd" for e in d.all_events()):
                problems.append("no watchdog event in the dump")
        opened = [s for s in tl.slices if s.end is None and s.cpu == d.stuck]
        names = [s.name for s in opened]
        say("open slices on CPU %d (marked): %s" % (d.stuck, "; ".join(names)))
        for want in ("page_table_lock held", "0x900 decrementer", "0x300 data storage", "spin on page_table_lock"):
            if want not in names:
                problems.append("slice '%s' is not open on the stuck CPU" % want)
    elif expect == "completes":
        if d.reason == "deadlock":
            problems.append("the dump was taken in a deadlock report")
        total = done_total = 0
        for cpu, evs in sorted(d.events.items()):
            holds, done, dl, last = scan_lock_holds(evs, lock)
            total += holds
            done_total += done
            if dl:
                problems.append("CPU %d: a 0x300 inside the lock hold found the lock taken" % cpu)
            if last:
                a, r = evs[last[0]], evs[last[1]]
                say("CPU %d: %d lock holds, %d with a decrementer whose 0x300 completed inside; the last from %s to %s (%s)" % (
                    cpu, holds, done, fmt_us(d.us(a.tb)), fmt_us(d.us(r.tb)), fmt_us((r.tb - a.tb) * 1e6 / d.tb_hz)))
        if done_total == 0:
            problems.append("no lock hold with a completed 0x300 inside a decrementer (%d holds seen)" % total)
        stray = [s for s in tl.slices if s.end is None and not s.open.startswith(("parked", "stopped"))]
        if stray:
            problems.append("slices never ended outside a parked CPU: %s" % ", ".join("CPU %d %s" % (s.cpu, s.name) for s in stray[:5]))
    else:
        problems.append("unknown expectation %r" % expect)
    return problems


def text(d):
    out = []
    for cpu in sorted(d.events):
        info = d.cpus[cpu]
        out.append("CPU %d: %d events recorded, %d overwritten, %d torn" % (cpu, info["recorded"], info["overwritten"], info["torn"]))
        for e in d.events[cpu]:
            out.append("  %12s  %s%-18s c=%#x a=%#x b=%#x" % (fmt_us(d.us(e.tb)), "  " * e.depth, EVENTS[e.mn], e.c, e.a, e.b))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------

def load(path, elf):
    with open(path, encoding="utf-8", errors="replace") as f:
        d = parse(f.read())
    if elf:
        try:
            d.symbols = Symbols(elf)
        except (OSError, subprocess.CalledProcessError) as e:
            print("trace: no symbols from %s (%s): addresses stay numbers" % (elf, e), file=sys.stderr)
    return d


def write(path, s):
    if path in (None, "-"):
        sys.stdout.write(s)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("json", "svg", "check", "text"):
        p = sub.add_parser(name)
        p.add_argument("log")
        p.add_argument("--elf", help="kernel ELF: name the NIPs (nm)")
        if name in ("json", "svg"):
            p.add_argument("-o", "--output", default="-")
        if name == "svg":
            p.add_argument("--window", default="auto")
            p.add_argument("--title")
        if name == "check":
            p.add_argument("--expect", required=True, choices=["deadlock", "completes", "oops", "valid"])
            p.add_argument("--json")
            p.add_argument("--svg")
            p.add_argument("--title")
    p = sub.add_parser("validate")
    p.add_argument("json")
    p.add_argument("--deadlock-cpu", type=int)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "validate":
            with open(a.json, encoding="utf-8") as f:
                doc = json.load(f)
            problems = validate_chrome(doc, a.deadlock_cpu)
            for p in problems:
                print("trace: INVALID: " + p)
            n = sum(1 for e in doc["traceEvents"] if e.get("ph") in ("B", "E"))
            print("trace: %s: %d events, %d slice begins/ends, %s" % (a.json, len(doc["traceEvents"]), n, "valid" if not problems else "%d problems" % len(problems)))
            return 1 if problems else 0
        d = load(a.log, a.elf)
        tl = Timeline(d)
        if a.cmd == "json":
            write(a.output, json.dumps(to_chrome(tl), indent=None, separators=(",", ":")) + "\n")
        elif a.cmd == "svg":
            write(a.output, to_svg(tl, a.window, a.title))
        elif a.cmd == "text":
            write("-", text(d))
        elif a.cmd == "check":
            say = lambda s: print("trace-check: " + s)
            problems = check(d, tl, a.expect, say)
            doc = to_chrome(tl)
            doc = json.loads(json.dumps(doc))   # what a reader of the file gets
            vp = validate_chrome(doc, d.stuck if a.expect == "deadlock" else None)
            problems += ["JSON: " + p for p in vp]
            opened = doc["otherData"]["open_slices"]
            say("JSON: %d trace events, %d slices, %d open (marked), valid: %s" % (
                len(doc["traceEvents"]), len(tl.slices), len(opened), "yes" if not vp else "NO"))
            if a.json:
                write(a.json, json.dumps(doc) + "\n")
                say("wrote " + a.json)
            if a.svg:
                write(a.svg, to_svg(tl, "auto", a.title))
                say("wrote " + a.svg)
            for p in problems:
                print("trace-check: FAIL: " + p)
            print("trace-check: %s (%s)" % ("PASS" if not problems else "FAIL", a.expect))
            return 1 if problems else 0
    except DumpError as e:
        print("trace: " + str(e), file=sys.stderr)
        return 1
    except (OSError, subprocess.CalledProcessError) as e:
        print("trace: " + str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
