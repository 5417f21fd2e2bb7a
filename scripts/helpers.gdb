# hashkernel gdb helpers. Sourced by scripts/gdb.sh; by hand: `source scripts/helpers.gdb`
# (after loading the kernel ELF). Needs a gdb with Python (Debian's gdb-multiarch has it).
#
#   pte-decode VALUE     decode a software PTE value (layout of src/mm/pte.rs)
#   pte ADDR             walk the kernel page tables (src/mm/pgtable.rs) for a vmalloc (0xd...)
#                        or ioremap (0xe...) address and decode its PTE
#   hashstats [CPU]      the per-CPU hash_page counters (each CPU's PACA) and their sum, faults
#   excframe [ADDR]      print an exception frame (ExcFrame); default: the innermost one of the
#                        current CPU (the hash frame inside the 0x300 fast path, else PACA
#                        last_frame)
#   break-hash-fault [vmalloc|ioremap|any] [--any-caller]
#                        stop in the hash-fault handlers for faults on one region
#   slb [CPU]            QEMU's SLB dump for a vCPU (monitor "info tlb" through the gdbstub)
#   hk-realmode          symbols at physical addresses, for the real-mode entry stub (see gdb.sh)
#   trace-dump [CPU]     the kernel event trace's rings (src/trace), in the kernel's own dump
#                        format: `set logging` it to a file and give that to scripts/trace.py
#
# Also installs unwinders for exc_common and for the 0x300 entry (hash_fault_entry), so that
# `bt` inside an exception handler continues from the exception (or hash) frame into the
# interrupted code (set HK_NO_EXC_UNWINDER=1 to see gdb without them).

set pagination off
set confirm off
set print pretty off

python
import gdb, struct

# Names and layouts come from the kernel itself: src/gdb_names.rs exports HK_GDB_NAMES (kind,
# value, name address, name length per entry), read once the image is loaded (hk_load_names).
# Nothing here re-declares a bit layout, a vector, an hcall, a counter or a trace event.
HK_PTE_FLAGS, HK_VECTORS, HK_HCALLS, HK_STAT_NAMES, HK_TRACE_EVENTS, HK_TRACE_GROUPS = [], {}, {}, [], [], []
HK_GROUP_IX = HK_SECONDARY = HK_PFN_SHIFT = HK_OUTCOMES = HK_HDR_SIZE = None
HK_FRAME_FIELDS = []
HK_FRAME_OFFSETS = {}
HK_NAMES_LOADED = False

def hk_u64(addr):
    return struct.unpack(">Q", bytes(gdb.selected_inferior().read_memory(addr, 8)))[0]


def hk_symbol(name):
    """The gdb.Symbol of a (Rust path) static, or None."""
    for look in (gdb.lookup_static_symbol, gdb.lookup_global_symbol):
        try:
            s = look(name)
        except Exception:
            s = None
        if s is not None:
            return s
    return None


def hk_addr(name):
    """Address of a symbol: debug-info symbol, else the ELF symbol table (assembly labels)."""
    s = hk_symbol(name)
    if s is not None:
        try:
            a = s.value().address
            if a is not None:
                return int(a)
        except gdb.error:
            pass
    try:
        m = gdb.execute("info address " + name, to_string=True)
    except gdb.error as e:
        raise gdb.GdbError("symbol not found: %s (%s)" % (name, e))
    for w in m.replace(".", " ").split():
        if w.startswith("0x"):
            return int(w, 16)
    raise gdb.GdbError("symbol not found: " + name)


def hk_load_names(force=False):
    """Reads src/gdb_names.rs's table from the image (a live kernel or the ELF alone)."""
    global HK_PTE_FLAGS, HK_VECTORS, HK_HCALLS, HK_STAT_NAMES, HK_TRACE_EVENTS, HK_TRACE_GROUPS
    global HK_GROUP_IX, HK_SECONDARY, HK_PFN_SHIFT, HK_OUTCOMES, HK_HDR_SIZE, HK_FRAME_FIELDS
    global HK_FRAME_OFFSETS, HK_NAMES_LOADED
    if HK_NAMES_LOADED and not force:
        return
    base, n = hk_addr("HK_GDB_NAMES"), hk_u64(hk_addr("HK_GDB_NAMES_LEN"))
    inf = gdb.selected_inferior()
    t = {k: [] for k in range(1, 8)}
    for i in range(n):
        kind, value, at, ln = struct.unpack(">4Q", bytes(inf.read_memory(base + 32 * i, 32)))
        t[kind].append((value, bytes(inf.read_memory(at, ln)).decode()))
    pte = dict((name, v) for v, name in t[1])
    HK_GROUP_IX, HK_SECONDARY = pte["GROUP_IX"], pte["SECONDARY"]
    HK_PTE_FLAGS = [(v, name) for v, name in t[1] if v & (v - 1) == 0 and name != "SECONDARY"]
    HK_VECTORS = dict(t[2])
    HK_HCALLS = dict(t[3])
    HK_STAT_NAMES = [name for _, name in sorted(t[4])]
    HK_TRACE_EVENTS = [name for _, name in sorted(t[5])]
    HK_TRACE_GROUPS = [name for _, name in sorted(t[6])]
    consts = dict((name, v) for v, name in t[7])
    HK_PFN_SHIFT, HK_OUTCOMES, HK_HDR_SIZE = consts["pte.pfn_shift"], consts["stats.outcomes"], consts["frame.hdr_size"]
    HK_FRAME_OFFSETS = {k[len("frame."):]: v for k, v in consts.items() if k.startswith("frame.") and k != "frame.hdr_size"}
    HK_FRAME_FIELDS = [k for k, _ in sorted(HK_FRAME_OFFSETS.items(), key=lambda kv: kv[1]) if k != "gpr"]
    HK_NAMES_LOADED = True


def hk_try_load_names(_event=None):
    try:
        hk_load_names()
    except Exception:
        pass


def hk_decode_pte(v):
    hk_load_names()
    flags = [n for bit, n in HK_PTE_FLAGS if v & bit]
    ix = (v & HK_GROUP_IX) >> 12
    sec = bool(v & HK_SECONDARY)
    pfn = v >> HK_PFN_SHIFT
    s = "PTE %#018x: %s pfn=%#x (PA %#x)" % (v, "|".join(flags) or "none", pfn, pfn << 12)
    if v & 0x400:
        s += " hpte=%s group slot %d" % ("secondary" if sec else "primary", ix)
    elif ix or sec:
        s += " (stale slot bits: ix=%d secondary=%d)" % (ix, sec)
    return s


class HkPteDecode(gdb.Command):
    """pte-decode VALUE: decode a software PTE (src/mm/pte.rs layout)."""
    def __init__(self):
        super().__init__("pte-decode", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        hk_load_names()
        if not arg:
            raise gdb.GdbError("usage: pte-decode VALUE")
        print(hk_decode_pte(int(gdb.parse_and_eval(arg)) & 0xffffffffffffffff))


class HkPte(gdb.Command):
    """pte ADDR: walk the page tables (PGD/PMD/PTE of src/mm/pgtable.rs) and decode the PTE."""
    def __init__(self):
        super().__init__("pte", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        hk_load_names()
        if not arg:
            raise gdb.GdbError("usage: pte ADDR")
        ea = int(gdb.parse_and_eval(arg)) & 0xffffffffffffffff
        region = ea >> 60
        if region not in (0xd, 0xe):
            print("%#x: not a vmalloc (0xd...) or ioremap (0xe...) address: no software PTE "
                  "(the linear 0xc... region is bolted in the HPT)" % ea)
            return
        off = ea & 0x0fffffffffffffff
        if off >= 1 << 39:
            print("%#x: beyond the 512 GiB the page tables cover" % ea)
            return
        roots = hk_addr("hashkernel::mm::pgtable::ROOTS")
        # Missing levels point to the shared empty tables (mm/pgtable.rs EMPTY: PGD, PMD, PTE).
        try:
            empty_at = hk_addr("hashkernel::mm::pgtable::EMPTY")
            empty = [hk_u64(empty_at + 8 * i) for i in range(3)]
        except gdb.GdbError:
            empty = [0, 0, 0]
        idx = [(off >> 30) & 511, (off >> 21) & 511, (off >> 12) & 511]
        t = hk_u64(roots + 8 * (0 if region == 0xd else 1))
        names = ["PGD", "PMD", "PTE page"]
        path = []
        for lvl, i in enumerate(idx):
            if t == 0 or t == empty[lvl]:
                print("%#x: no %s (the empty table; walk: %s)" % (ea, names[lvl], " -> ".join(path) or "root empty"))
                return
            path.append("%s %#x[%d]" % (names[lvl], t, i))
            slot = t + 8 * i
            t = hk_u64(slot)
        print("%#x: %s @ %#x" % (ea, " -> ".join(path), slot))
        print("  " + hk_decode_pte(t))


def hk_stats_source():
    import os
    src = gdb.lookup_global_symbol("hashkernel::hash::stats::percpu_stats::total")
    f = src.symtab.fullname() if src is not None else None
    cands = [os.path.join(os.path.dirname(f), "stats.rs")] if f else []
    cands.append(os.path.join(os.environ.get("HK_ROOT", "."), "src/hash/stats.rs"))
    for c in cands:
        if os.path.exists(c):
            return open(c).read()
    return None


def hk_stat_names():
    """Counter names and the number of outcome counters (their sum is `faults`)."""
    hk_load_names()
    return HK_STAT_NAMES, HK_OUTCOMES

class HkHashStats(gdb.Command):
    """hashstats [CPU]: per-CPU hash_page counters (each CPU's PACA, `stats`), and `faults`,
the sum of the outcome counters."""
    def __init__(self):
        super().__init__("hashstats", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        hk_load_names()
        sym = hk_symbol("hashkernel::arch::ppc64::percpu::PACA_ARRAY") or hk_symbol("PACA_ARRAY")
        if sym is None:
            raise gdb.GdbError("no symbol PACA_ARRAY")
        pacas = sym.value()
        ncpu = pacas.type.range()[1] + 1
        row = pacas[0].type.sizeof
        stats_off = hk_paca_off("stats")
        ncnt = pacas[0]["stats"]["c"].type.range()[1] + 1
        names, outcomes = hk_stat_names()
        if len(names) != ncnt:
            print("warning: %d names for %d counters" % (len(names), ncnt))
            names = (names + ["c%d" % i for i in range(len(names), ncnt)])[:ncnt]
        base = int(pacas.address) + stats_off
        cpus = [int(arg)] if arg else range(ncpu)
        vals = {c: [hk_u64(base + c * row + 8 * i) for i in range(ncnt)] for c in cpus}
        for c in cpus:
            vals[c] = [sum(vals[c][:outcomes])] + vals[c]
        shown = [c for c in cpus if any(vals[c])] or list(cpus)[:1]
        print("%-18s" % "counter" + "".join("%12s" % ("cpu%d" % c) for c in shown) + "%12s" % "total")
        for i, n in enumerate(["faults"] + names):
            print("%-18s" % n + "".join("%12d" % vals[c][i] for c in shown) + "%12d" % sum(vals[c][i] for c in cpus))


def hk_frame_layout():
    """Field offsets of ExcFrame (from the kernel's table) and its size."""
    hk_load_names()
    return dict(HK_FRAME_OFFSETS), max(HK_FRAME_OFFSETS.values()) + 8

def hk_read_frame(f):
    lay, size = hk_frame_layout()
    raw = bytes(gdb.selected_inferior().read_memory(f, size))
    r = {"gpr": list(struct.unpack(">32Q", raw[lay["gpr"]:lay["gpr"] + 256]))}
    for n in HK_FRAME_FIELDS:
        if n in lay:
            r[n] = struct.unpack(">Q", raw[lay[n]:lay[n] + 8])[0]
    return r




def hk_sym(a):
    b = gdb.block_for_pc(a) if a else None
    f = b.function if b is not None else None
    if f is None:
        try:
            s = gdb.execute("info symbol %#x" % a, to_string=True).strip()
            return "" if s.startswith("No symbol") else " <" + s.split(" in section")[0] + ">"
        except gdb.error:
            return ""
    return " <" + f.name + ">"


class HkExcFrame(gdb.Command):
    """excframe [ADDR]: print an ExcFrame (default: this CPU's innermost, PACA last_frame)."""
    def __init__(self):
        super().__init__("excframe", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        hk_load_names()
        hash_frame = False
        if arg:
            f = int(gdb.parse_and_eval(arg))
        else:
            paca = int(gdb.parse_and_eval("$r13")) & 0xffffffffffffffff
            f = hk_u64(paca + hk_paca_off("last_frame"))
            # Inside the 0x300 fast path (a frame returns into hash_fault_entry's call), the
            # innermost exception is the hash fault: its frame is this CPU's hash frame.
            try:
                hlo, hhi = HK_HASH_UNWINDER.bounds()
                fr = gdb.newest_frame()
                while fr is not None:
                    if hlo <= fr.pc() < hhi:
                        f = hk_u64(paca + hk_paca_off("hash_frame")) + HK_HDR_SIZE
                        hash_frame = [int(fr.read_register("r%d" % i)) & 0xffffffffffffffff for i in range(14, 32)]
                        break
                    fr = fr.older()
            except Exception:
                pass
            if f == 0:
                print("no exception in progress on this CPU (PACA last_frame = 0)")
                return
        r = hk_read_frame(f)
        if hash_frame:
            r["trap"] = 0x300     # preset in the hash frame; DSISR and r1 are saved only on the slow path
            r["gpr"][1] = hk_u64(f - HK_HDR_SIZE)
            try:
                r["dsisr"] = int(gdb.parse_and_eval("$dsisr")) & 0xffffffff
            except Exception:
                pass
        # r14-r31 are in the frame only after exception_slow (oops); otherwise take them from
        # the interrupted frame as unwound by gdb (the exc_common frame whose header is f).
        live = None
        try:
            fr = gdb.newest_frame()
            lo, hi = HK_UNWINDER.bounds()
            while fr is not None:
                if lo <= fr.pc() < hi and int(fr.read_register("r1")) + HK_HDR_SIZE == f:
                    older = fr.older()
                    if older is not None:
                        live = [int(older.read_register("r%d" % i)) & 0xffffffffffffffff for i in range(14, 32)]
                    break
                fr = fr.older()
        except Exception:
            live = None
        if hash_frame:
            live = hash_frame     # r14-r31 as unwound into hash_fault_entry: the interrupted ones
        if live is not None:
            r["gpr"][14:32] = live
        print("%s at %#x: vector %#x (%s)" % ("hash-fault frame (this CPU's, fast path)" if hash_frame else "exception frame",
                                                f, r["trap"], HK_VECTORS.get(r["trap"], "?")))
        print("  NIP %#018x%s" % (r["nip"], hk_sym(r["nip"])))
        print("  LR  %#018x%s" % (r["lr"], hk_sym(r["lr"])))
        print("  MSR %#018x  CR %#010x  CTR %#x  XER %#x" % (r["msr"], r["cr"], r["ctr"], r["xer"]))
        print("  DAR %#018x  DSISR %#010x" % (r["dar"], r["dsisr"]))
        for row in range(8):
            print("  GPR%02d:" % (row * 4) + "".join(" %016x" % r["gpr"][row * 4 + c] for c in range(4)))
        print("  (GPR14-31: %s)" % ("unwound through the handler frames (the fast path does not save them); "
                                     "LLVM's CFI marks callee-saved GPRs as stored right after the stack "
                                     "update, before the actual std, so stopped early in a function these "
                                     "may be stale" if live is not None else
                                     "as stored in the frame: valid only after exception_slow (oops)"))


def hk_paca_off(field):
    try:
        t = gdb.lookup_type("hashkernel::arch::ppc64::percpu::Paca")
        for f in t.fields():
            if f.name == field:
                return f.bitpos // 8
    except Exception:
        pass
    raise gdb.GdbError("no field %s in hashkernel::arch::ppc64::percpu::Paca" % field)


class HkSlb(gdb.Command):
    """slb [CPU]: QEMU's SLB dump of a vCPU (monitor "info tlb"; CPU = QEMU cpu index)."""
    def __init__(self):
        super().__init__("slb", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        hk_load_names()
        # QEMU's monitor has its own "current CPU": select the one asked for, or the vCPU of
        # the selected gdb thread (thread N = QEMU cpu index N-1).
        cpu = int(arg) if arg else gdb.selected_thread().num - 1
        gdb.execute("monitor cpu %d" % cpu, to_string=True)
        out = gdb.execute("monitor info tlb", to_string=True)
        print("SLB of vCPU %d (QEMU monitor 'info tlb'):" % cpu)
        print(out.rstrip())


class HkHashFaultBreakpoint(gdb.Breakpoint):
    """Stops in a hash-fault handler only for faults on addresses of one region. `fast`: the
    0x300 entry's call (do_hash_fault[_native][_locked|_patch2003|_cas2]), where the address is DAR;
    otherwise hash_page (0x400, a 0x300 taken in real mode), where it is the `ea` argument,
    coming from hash::fault::handle unless `any_caller`."""
    def __init__(self, spec, fast, region, any_caller):
        super().__init__(spec, internal=False)
        self.fast, self.region, self.any_caller = fast, region, any_caller

    def stop(self):
        try:
            if self.fast:
                ea = int(gdb.parse_and_eval("$dar"))
            else:
                # The argument, from the debug info: r3 is already reused at the breakpoint
                # address in optimised builds.
                try:
                    ea = int(gdb.selected_frame().read_var("ea"))
                except Exception:
                    ea = int(gdb.parse_and_eval("$r3"))
            ea &= 0xffffffffffffffff
            if self.region is not None and ea >> 60 != self.region:
                return False
            if self.fast or self.any_caller:
                return True
            caller = gdb.newest_frame().older()
            return caller is not None and (caller.name() or "").endswith("hash::fault::handle")
        except Exception as e:
            print("break-hash-fault: %s" % e)
            return True


class HkBreakHashFault(gdb.Command):
    """break-hash-fault [vmalloc|ioremap|any] [--any-caller]: breakpoints in the hash-fault
handlers that stop only for a fault on that region (default vmalloc, 0xd...): do_hash_fault and
do_hash_fault_locked (the 0x300 entry calls one of them, by hash_page= design; the address is
DAR) and hash_page (0x400 and a 0x300 taken with translation off, through hash::fault::handle;
--any-caller: from anywhere). A plain `break ... if ...` cannot express the caller test: gdb's
$_caller_is needs malloc in the inferior for its string argument."""
    def __init__(self):
        super().__init__("break-hash-fault", gdb.COMMAND_BREAKPOINTS)

    def invoke(self, arg, from_tty):
        hk_load_names()
        words = arg.split()
        anyc = "--any-caller" in words
        words = [w for w in words if w != "--any-caller"]
        region = {"vmalloc": 0xd, "ioremap": 0xe, "io": 0xe, "any": None}.get(words[0] if words else "vmalloc", "bad")
        if region == "bad":
            raise gdb.GdbError("usage: break-hash-fault [vmalloc|ioremap|any] [--any-caller]")
        what = words[0] if words else "vmalloc"
        for spec, fast, how in (("do_hash_fault", True, "the 0x300 entry's lock-free handler"),
                                ("do_hash_fault_locked", True, "the 0x300 entry's locked (2003) handler"),
                                ("do_hash_fault_native", True, "the 0x300 entry's lock-free handler (powernv)"),
                                ("do_hash_fault_patch2003", True, "the 0x300 entry's patch2003 handler"),
                                ("do_hash_fault_cas2", True, "the 0x300 entry's cas2 handler"),
                                ("do_hash_fault_native_locked", True, "the 0x300 entry's locked handler (powernv)"),
                                ("do_hash_fault_native_patch2003", True, "the 0x300 entry's patch2003 handler (powernv)"),
                                ("do_hash_fault_native_cas2", True, "the 0x300 entry's cas2 handler (powernv)"),
                                ("hashkernel::hash::fault::hash_page", False,
                                 "hash_page, from anywhere" if anyc else "hash_page, from the 0x400/real-mode path")):
            b = HkHashFaultBreakpoint(spec, fast, region, anyc)
            print("Breakpoint %d: %s, %s faults" % (b.number, how, what))



# The event trace (src/trace/ring.rs): TRACE_LAYOUT tells where the rings are and how a slot
# is laid out, so this reads them without relying on the debug info of atomics. The output is
# what the kernel prints on exit (`trace: dump begin: ...` to `trace: dump end: ...`).



def hk_location(addr):
    """'file:line' of a core::panic::Location at addr, from the debug info's field offsets."""
    t = gdb.lookup_type("core::panic::location::Location")
    f = {fl.name: fl for fl in t.fields()}
    name = f.get("filename") or f.get("file")
    ptr = hk_u64(addr + name.bitpos // 8)
    ln = hk_u64(addr + name.bitpos // 8 + 8)
    line = struct.unpack(">I", bytes(gdb.selected_inferior().read_memory(addr + f["line"].bitpos // 8, 4)))[0]
    return "%s:%d" % (bytes(gdb.selected_inferior().read_memory(ptr, min(ln, 4096))).decode("utf-8", "replace"), line)


class HkTraceDump(gdb.Command):
    """trace-dump [CPU]: the event trace's rings, in the format of the kernel's dump (for
scripts/trace.py). Reads memory only: works on a stopped kernel and on one gdb interrupted."""
    def __init__(self):
        super().__init__("trace-dump", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        hk_load_names()
        lay = hk_addr("TRACE_LAYOUT")
        nrings, stride, slots_off, slot_size, ring_len, w0_off = [hk_u64(lay + 8 * i) for i in range(6)]
        rings = hk_addr("TRACE_RINGS")
        try:
            ncpus = hk_u64(hk_addr("hashkernel::smp::NCPUS"))
        except gdb.GdbError:
            ncpus = nrings
        try:
            g = struct.unpack(">I", bytes(gdb.selected_inferior().read_memory(hk_addr("hashkernel::trace::ring::GROUPS"), 4)))[0]
            groups = ",".join(n for i, n in enumerate(HK_TRACE_GROUPS) if g >> i & 1) or "off"
        except gdb.GdbError:
            groups = "?"
        cpus = [int(arg)] if arg else list(range(ncpus))
        try:
            ptl = hk_addr("hashkernel::mm::vmalloc::PAGE_TABLE_LOCK")
        except gdb.GdbError:
            ptl = None
        print("trace: dump begin: reason=gdb stuck=- dumper=- cpus=%d tb_hz=512000000 ring=%d groups=%s stopped=0"
              % (len(cpus) if arg else ncpus, ring_len, groups))
        sites, locks, hcalls = [], [], []
        total = 0
        inf = gdb.selected_inferior()
        for cpu in cpus:
            base = rings + cpu * stride
            head = hk_u64(base)
            first = max(head - ring_len, 0)
            raw = bytes(inf.read_memory(base + slots_off, ring_len * slot_size))
            recs, torn = [], 0
            for i in range(first, head):
                o = (i % ring_len) * slot_size
                tb, = struct.unpack(">Q", raw[o:o + 8])
                w0, = struct.unpack(">Q", raw[o + w0_off:o + w0_off + 8])
                a, b = struct.unpack(">QQ", raw[o + 16:o + 32])
                ev = w0 >> 56
                if not 1 <= ev <= len(HK_TRACE_EVENTS) or (w0 >> 32) & 0xffff != (i + 1) & 0xffff:
                    torn += 1
                    continue
                recs.append((tb, ev, (w0 >> 48) & 0xff, w0 & 0xffffffff, a, b))
            tb0 = recs[0][0] if recs else 0
            print("trace: cpu %d: %d events recorded, %d overwritten, %d torn, tb0 %x" % (cpu, head, first, torn, tb0))
            prev = tb0
            for tb, ev, depth, c, a, b in recs:
                mn = HK_TRACE_EVENTS[ev - 1]
                words = [c, a, b]
                while words and words[-1] == 0:
                    words.pop()
                print("T%d +%d %s %d%s" % (cpu, tb - prev, mn, depth, "".join(" %x" % w for w in words)))
                prev = tb
                if mn in ("la", "lc"):
                    if b and b not in sites:
                        sites.append(b)
                    if a not in locks:
                        locks.append(a)
                if mn in ("hc", "hb", "he") and c not in hcalls:
                    hcalls.append(c)
            total += len(recs)
        for s in sites:
            try:
                print("trace: site %x %s" % (s, hk_location(s)))
            except Exception:
                pass
        for l in locks:
            print("trace: lock %x %s" % (l, "page_table_lock" if l == ptl else "(unknown lock)"))
        for h in hcalls:
            print("trace: hcall %x %s" % (h, HK_HCALLS.get(h, "?")))
        print("trace: dump end: %d events" % total)

HkPteDecode(); HkPte(); HkHashStats(); HkExcFrame(); HkSlb(); HkBreakHashFault(); HkTraceDump()

# --- unwinding through exc_common ----------------------------------------------------------
# boot/vectors.S calls exception_entry from exc_common with r1 = an ABI header (HDR_SIZE bytes)
# followed by the ExcFrame. Its back-chain word points at the interrupted r1, but the LR-save
# slot of that header, where exc_common parks the interrupted NIP, is overwritten by
# exception_entry's own prologue (with the return address into exc_common), and exc_common has
# no CFI. So gdb's own unwinders stop there ("Backtrace stopped: previous frame inner to this
# frame (corrupt stack?)" right after "in exc_common ()"). This unwinder takes NIP, LR, CTR, CR,
# XER, MSR and r0-r13 of the interrupted context from the ExcFrame, and r14-r31 from the
# handler frames' unwinding (the fast path does not save them: every handler preserves them).
from gdb.unwinder import Unwinder


class HkFrameId(object):
    def __init__(self, sp, pc):
        # gdb wants gdb.Value attributes here (a plain int is rejected as "no 'sp' attribute").
        self.sp = sp
        self.pc = pc


class HkExcUnwinder(Unwinder):
    def __init__(self):
        super().__init__("hashkernel exc_common")
        self.lo = self.hi = None

    def bounds(self):
        if self.lo is None:
            self.lo = hk_addr("exc_return") - 4      # the 'nop' after bl exception_entry
            self.hi = hk_addr("exc_stack_overflow")  # end of the restore path
        return self.lo, self.hi

    def __call__(self, pf):
        hk_try_load_names()
        try:
            lo, hi = self.bounds()
            pc = int(pf.read_register("pc"))
            if not (lo <= pc < hi):
                return None
            sp = int(pf.read_register("r1"))
            f = sp + HK_HDR_SIZE
            r = hk_read_frame(f)
            if hk_u64(sp) != r["gpr"][1]:           # back chain must name the saved r1
                return None
        except Exception:
            return None
        t = pf.read_register("pc").type
        ui = pf.create_unwind_info(HkFrameId(gdb.Value(sp).cast(pf.read_register("r1").type), gdb.Value(lo).cast(t)))
        def put(reg, v):
            try:
                ui.add_saved_register(reg, gdb.Value(v).cast(pf.read_register(reg).type))
            except Exception:
                pass
        # r0-r13 come from the frame. r14-r31 are saved there only on the oops path
        # (exception_slow): every handler preserves them (ELFv2 non-volatiles), so their values
        # in the interrupted context are this frame's, as gdb unwound them through the handler
        # frames' CFI.
        for i in range(14):
            put("r%d" % i, r["gpr"][i])
        for i in range(14, 32):
            try:
                ui.add_saved_register("r%d" % i, pf.read_register("r%d" % i))
            except Exception:
                pass
        ui.add_saved_register("pc", gdb.Value(r["nip"]).cast(t))
        for reg in ("lr", "ctr", "xer", "msr"):
            put(reg, r[reg])
        put("cr", r["cr"] & 0xffffffff)
        return ui


class HkHashUnwinder(Unwinder):
    """The 0x300 entry (boot/vectors.S hash_fault_entry): r1 is this CPU's fixed hash frame,
    whose back chain is the interrupted r1; the volatile registers, CR, LR, CTR, XER, SRR0/1
    and DAR are in the ExcFrame after the header. r13 and r14-r31 are the handler's (kernel
    code keeps the PACA in r13; the handler preserves r14-r31)."""
    def __init__(self):
        super().__init__("hashkernel hash_fault_entry")
        self.lo = self.hi = None

    def bounds(self):
        if self.lo is None:
            self.lo = hk_addr("hash_fault_call") + 4     # the return address of its call
            self.hi = hk_addr("hash_fault_slow")         # the slow path ends in exc_common's
        return self.lo, self.hi

    def __call__(self, pf):
        hk_try_load_names()
        try:
            lo, hi = self.bounds()
            pc = int(pf.read_register("pc"))
            if not (lo <= pc < hi):
                return None
            sp = int(pf.read_register("r1"))
            paca = int(pf.read_register("r13")) & 0xffffffffffffffff
            if sp != hk_u64(paca + hk_paca_off("hash_frame")):
                return None
            r = hk_read_frame(sp + HK_HDR_SIZE)
            back = hk_u64(sp)
        except Exception:
            return None
        t = pf.read_register("pc").type
        ui = pf.create_unwind_info(HkFrameId(gdb.Value(sp).cast(pf.read_register("r1").type), gdb.Value(lo).cast(t)))
        def put(reg, v):
            try:
                ui.add_saved_register(reg, gdb.Value(v).cast(pf.read_register(reg).type))
            except Exception:
                pass
        for i in [0] + list(range(2, 13)):
            put("r%d" % i, r["gpr"][i])
        put("r1", back)
        for i in range(13, 32):
            try:
                ui.add_saved_register("r%d" % i, pf.read_register("r%d" % i))
            except Exception:
                pass
        ui.add_saved_register("pc", gdb.Value(r["nip"]).cast(t))
        for reg in ("lr", "ctr", "xer", "msr"):
            put(reg, r[reg])
        put("cr", r["cr"] & 0xffffffff)
        return ui


import os
HK_UNWINDER = HkExcUnwinder()
HK_HASH_UNWINDER = HkHashUnwinder()
if os.environ.get("HK_NO_EXC_UNWINDER"):
    print("helpers.gdb: HK_NO_EXC_UNWINDER set: not installing the exc_common and hash_fault_entry unwinders")
else:
    gdb.unwinder.register_unwinder(None, HK_UNWINDER, replace=True)
    gdb.unwinder.register_unwinder(None, HK_HASH_UNWINDER, replace=True)

# Now if the image is loaded already, else as soon as it is.
hk_try_load_names()
gdb.events.new_objfile.connect(hk_try_load_names)
end

python
class HkRealMode(gdb.Command):
    """hk-realmode: reload the kernel symbols at their PHYSICAL addresses (link - 0xc000000000000000).

The image runs at physical 0x400000 (link address 0xc000000000400000) in real mode until
enter_virtual turns translation on (on powernv from opal_relocated on: skiboot enters the
file in place at 0x20010000, and opal_start copies it there first); QEMU matches breakpoints against the exact NIP, so
`break early_main` must resolve to 0x4xxxxx there. Undo with `hk-virtual`."""
    def __init__(self):
        super().__init__("hk-realmode", gdb.COMMAND_FILES)

    def invoke(self, arg, from_tty):
        hk_load_names()
        elf = gdb.current_progspace().filename or getattr(self, "elf", None)
        if not elf:
            raise gdb.GdbError("no kernel ELF loaded")
        HkRealMode.elf = elf
        gdb.execute("symbol-file")
        gdb.execute("add-symbol-file %s -o 0x4000000000000000" % elf)   # == -0xc000000000000000 mod 2^64
        print("symbols now at physical addresses (e.g. early_main = %#x)" % hk_addr("early_main"))


class HkVirtual(gdb.Command):
    """hk-virtual: reload the kernel symbols at their link addresses (after hk-realmode)."""
    def __init__(self):
        super().__init__("hk-virtual", gdb.COMMAND_FILES)

    def invoke(self, arg, from_tty):
        hk_load_names()
        elf = getattr(HkRealMode, "elf", None) or gdb.current_progspace().filename
        gdb.execute("symbol-file")
        gdb.execute("symbol-file %s" % elf)


HkRealMode(); HkVirtual()
end
