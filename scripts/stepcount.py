# gdb-multiarch Python half of scripts/stepcount.sh (run it through that script).
#
# Runs the guest to a trigger, then single-steps one vCPU with raw remote-protocol `s`
# packets and counts instructions from the trigger (an exception vector's first instruction)
# through the rfid/hrfid/rfscv that closes it at the same nesting level, both included.
# Raw packets, not `stepi`: gdb's stepi on PowerPC steps over a whole short l?arx...st?cx.
# sequence at once, which undercounts atomic sequences.
#
# Parameters come from the environment (set by stepcount.sh):
#   SC_ELF SC_PORT SC_AFTERS ("ADDR@N ADDR@N ..."), SC_AT ("ADDR@N"), SC_ANY_CPU (0/1),
#   SC_ENDIAN (big/little), SC_VBASES ("0x0 0xc000000000004000"), SC_MAX, SC_TRACE (0/1),
#   SC_ALIAS ("BASE LEN" or ""), SC_LABELS ("ADDR=NAME ...", for messages)
import os
import re
import sys

import gdb


def env(k, d=""):
    return os.environ.get(k, d)


def fail(msg):
    print(f"stepcount: {msg}", flush=True)
    try:
        gdb.execute("kill", to_string=True)
    except gdb.error:
        pass
    gdb.execute("quit 2")


ENDIAN = env("SC_ENDIAN", "big")
VBASES = [int(x, 0) for x in env("SC_VBASES", "0x0 0xc000000000004000").split()]
MAXSTEPS = int(env("SC_MAX", "200000"))
TRACE = env("SC_TRACE", "0") == "1"
LABELS = dict((int(a, 0), n) for a, n in (x.split("=", 1) for x in env("SC_LABELS").split("\x1f") if x))


def label(a):
    return LABELS.get(a, f"{a:#x}")


def is_vector(pc):
    for b in VBASES:
        off = (pc - b) & 0xFFFFFFFFFFFFFFFF
        if off in (0x100, 0x200, 0x300, 0x380, 0x400, 0x480, 0x500, 0x600, 0x700, 0x800, 0x900,
                   0x980, 0xA00, 0xB00, 0xC00, 0xD00):
            return True
        if 0xE00 <= off <= 0xF80 and off % 0x20 == 0:
            return True
        if 0x1000 <= off <= 0x1700 and off % 0x100 == 0:
            return True
    return False


def is_return(w):
    return (w & 0xFC0007FE) in (0x4C000024, 0x4C000224, 0x4C0000A4)


def is_sc(w):
    return (w & 0xFC000003) == 0x44000002


def is_hint(w):
    # `or N,N,N` (N != 0): QEMU 7.2 translates it with gen_pause(), which ends the block with
    # EXCP_HLT; the vCPU then runs one more instruction before the single-step stops.
    rs, ra, rb = (w >> 21) & 31, (w >> 16) & 31, (w >> 11) & 31
    return (w & 0xFC0007FF) == 0x7C000378 and rs == ra == rb and rs != 0


def branch_target(w, pc):
    op = w >> 26
    if op == 18:
        d = w & 0x03FFFFFC
        if d & 0x02000000:
            d -= 0x04000000
    elif op == 16:
        d = w & 0xFFFC
        if d & 0x8000:
            d -= 0x10000
    else:
        return None
    return (d if w & 2 else pc + d) & 0xFFFFFFFFFFFFFFFF


PKT = re.compile(r'received: "(.*)"')


def packet(p):
    out = gdb.execute(f"maint packet {p}", to_string=True)
    m = PKT.search(out)
    if not m:
        fail(f"no reply to packet {p!r}: {out!r}")
    return m.group(1)


def read_pc():
    # Register 0x40 is the PC in QEMU's power64-core description; the stub sends it in the
    # guest's current byte order.
    h = packet("p40")
    if not re.fullmatch(r"[0-9a-f]{16}", h):
        fail(f"bad PC reply {h!r}")
    return int.from_bytes(bytes.fromhex(h), "little" if ENDIAN == "little" else "big")


WORDS = {}


def insn_at(pc):
    if pc not in WORDS:
        h = packet(f"m{pc:x},4")
        if not re.fullmatch(r"[0-9a-f]{8}", h):
            fail(f"cannot read the instruction at {pc:#x}: {h!r}")
        WORDS[pc] = int.from_bytes(bytes.fromhex(h), "little" if ENDIAN == "little" else "big")
    return WORDS[pc]


def stop_pc():
    return int(gdb.parse_and_eval("$pc")) & 0xFFFFFFFFFFFFFFFF


def run_to(addr, hits, thread=None):
    """Continue until `addr` has been hit `hits` times (on `thread` if given)."""
    bp = gdb.Breakpoint(f"*{addr:#x}", internal=True)
    if thread is not None:
        bp.thread = thread
    n = 0
    while n < hits:
        try:
            gdb.execute("continue", to_string=True)
        except gdb.error as e:
            fail(f"the guest stopped before reaching {label(addr)} (hit {n + 1} of {hits}): {e}")
        if not gdb.selected_inferior().pid or not gdb.selected_thread():
            fail(f"the guest ended before reaching {label(addr)}")
        if stop_pc() == addr:
            n += 1
        else:
            fail(f"stopped at {stop_pc():#x}, not at {label(addr)} (a signal? QEMU exited?)")
    bp.delete()
    return gdb.selected_thread().num


def main():
    gdb.execute("set pagination off")
    gdb.execute("set confirm off")
    gdb.execute("set print thread-events off")
    gdb.execute(f"file {env('SC_ELF')}", to_string=True)
    gdb.execute("set architecture powerpc:common64", to_string=True)
    gdb.execute(f"set endian {ENDIAN}", to_string=True)
    gdb.execute(f"target remote 127.0.0.1:{env('SC_PORT')}", to_string=True)

    thread = None
    for spec in env("SC_AFTERS").split():
        a, n = spec.split("@")
        thread = run_to(int(a, 0), int(n))
        print(f"stepcount: reached {label(int(a, 0))} (hit {n}) on thread {thread}", flush=True)
    a, n = env("SC_AT").split("@")
    at = int(a, 0)
    th = None if env("SC_ANY_CPU", "0") == "1" else thread
    thread = run_to(at, int(n), th)
    gdb.execute("delete", to_string=True)
    print(f"stepcount: at {label(at)} (hit {n}) on thread {thread}; stepping", flush=True)

    pc = read_pc()
    if pc != at:
        fail(f"the stub's PC {pc:#x} is not the trigger {at:#x}")
    tid = None
    count = own = sc = depth = maxdepth = stops = merged = 0
    trace = []
    ret_pc = None

    def account(pc, w):
        nonlocal count, own, sc
        count += 1
        own += depth == 0
        trace.append((pc, w, depth))
        if is_sc(w) and depth == 0:
            sc += 1

    while True:
        w = insn_at(pc)
        account(pc, w)
        reply = packet("s")
        stops += 1
        m = re.match(r"T([0-9a-f]{2})thread:([^;]+);", reply)
        if not m or m.group(1) != "05":
            fail(f"unexpected reply to s: {reply!r} after {count} steps at {pc:#x}")
        if tid is None:
            tid = m.group(2)
        elif m.group(2) != tid:
            fail(f"the step stopped thread {m.group(2)}, not {tid}")
        npc = read_pc()
        # After a priority hint the same step also ran the next instruction(s): count them.
        while is_hint(w) and npc != (pc + 4) & 0xFFFFFFFFFFFFFFFF:
            pc = (pc + 4) & 0xFFFFFFFFFFFFFFFF
            w = insn_at(pc)
            account(pc, w)
            merged += 1
        if is_return(w) and depth == 0:
            ret_pc = npc
            break
        if is_return(w):
            depth -= 1
        elif is_vector(npc) and npc != (pc + 4) & 0xFFFFFFFFFFFFFFFF and npc != branch_target(w, pc):
            depth += 1
            maxdepth = max(maxdepth, depth)
        pc = npc
        if count >= MAXSTEPS:
            fail(f"no closing rfid within {MAXSTEPS} steps (last PC {pc:#x})")
    gdb.execute("maint flush register-cache", to_string=True)

    if TRACE:
        alias = env("SC_ALIAS").split()
        abase, alen = (int(alias[0], 0), int(alias[1], 0)) if alias else (0, 0)
        names = {}

        def sym(a):
            if a in names:
                return names[a]
            q = a + abase if a < alen else a
            s = gdb.execute(f"info symbol {q:#x}", to_string=True).strip()
            s = re.sub(r" in section \S+$", "", s)
            if s.startswith("No symbol"):
                s = "?"
            if q != a:
                s = f"[alias {q:#x}] {s}"
            names[a] = s
            return s

        print("stepcount: trace (step pc word depth symbol):")
        for i, (p, w, d) in enumerate(trace, 1):
            print(f"  {i:5d} {p:#018x} {w:08x} {d} {sym(p)}")
        print("stepcount: per function (consecutive runs):")
        run_name, run_n = None, 0
        for p, _, _ in trace:
            f = re.sub(r"^\[alias \S+\] ", "", re.sub(r" \+ \d+$", "", sym(p)))
            if f == run_name:
                run_n += 1
            else:
                if run_name is not None:
                    print(f"  {run_n:5d} {run_name}")
                run_name, run_n = f, 1
        print(f"  {run_n:5d} {run_name}")

    nest = f"; {count - own} more in nested exceptions (max depth {maxdepth})" if maxdepth else ""
    print(f"stepcount: {own} instructions from {label(at)} through the rfid at {trace[-1][0]:#x}, both "
          f"included ({sc} sc){nest}; returned to {ret_pc:#x}", flush=True)
    if merged:
        print(f"stepcount: {stops} single-step stops: {merged} instruction(s) ran in the same step as a "
              f"preceding priority nop (or N,N,N), which QEMU 7.2 ends a block after (EXCP_HLT)", flush=True)
    print(f"STEPCOUNT {own} sc={sc} nested_insns={count - own} max_depth={maxdepth} stops={stops} merged={merged}", flush=True)
    try:
        gdb.execute("kill", to_string=True)
    except gdb.error:
        pass


try:
    main()
except gdb.error as e:
    fail(f"gdb: {e}")
gdb.execute("quit 0")
