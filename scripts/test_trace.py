#!/usr/bin/env python3
"""Unit tests of scripts/trace.py on dumps written here (the real runs are in scripts/ci.sh):
parsing, nesting, rings that wrapped, open slices, the JSON validator (shown to reject broken
documents), the deadlock and completion checks (each shown to fail on the other run), the SVG.

  python3 scripts/test_trace.py [-v]     last line: "N passed, M failed"
"""

import io
import json
import os
import sys
import unittest
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trace as tr  # noqa: E402  (scripts/trace.py)

LOCK = 0xc00000000047ed30
SITE = 0xc000000000485538


def dump(cpus, reason="exit", stuck="-", dumper=0, stopped=0, before="", after="", syms=True):
    """A dump as the kernel prints it: cpus = {cpu: [(delta, mn, depth, c, a, b), ...]}."""
    lines = [before] if before else []
    lines.append("trace: dump begin: reason=%s stuck=%s dumper=%s cpus=%d tb_hz=512000000 ring=4096 groups=all stopped=%d"
                 % (reason, stuck, dumper, len(cpus), stopped))
    for cpu, evs in sorted(cpus.items()):
        lines.append("trace: cpu %d: %d events recorded, 0 overwritten, 0 torn, tb0 %x" % (cpu, len(evs), 1000))
        for delta, mn, depth, *w in evs:
            while w and w[-1] == 0:
                w.pop()
            lines.append("T%d +%d %s %d%s\r" % (cpu, delta, mn, depth, "".join(" %x" % x for x in w)))
    if syms:
        lines += ["trace: site %x src/run/irqtest.rs:136" % SITE, "trace: lock %x page_table_lock" % LOCK,
                  "trace: hcall 8 H_ENTER"]
    lines.append("trace: dump end: %d events" % sum(len(v) for v in cpus.values()))
    if after:
        lines.append(after)
    return "\n".join(lines) + "\n"


# The 2003 deadlock on CPU 0, as the kernel records it; CPU 1 is the watchdog.
DEADLOCK = {
    0: [(0, "mk", 0, 1, 2000, 0), (500, "la", 0, 1, LOCK, SITE), (300, "xe", 1, 0x900, 0xd00000000000f000, 0xc000000000434400),
        (50, "dc", 1, 0, 0xc000000000434400, 0), (400, "xe", 2, 0x380, 0xd000000000000000, 0xc0000000004340c0),
        (20, "xx", 2, 0x380, 0xc0000000004340c0, 0), (30, "xe", 2, 0x300, 0xd000000000000000, 0xc0000000004340c0),
        (40, "lc", 2, 1, LOCK, SITE), (102400000, "xe", 3, 0x100, 0, 0xc00000000040528c), (100, "hb", 2, 0xe0, 0, 0)],
    1: [(0, "hb", 0, 0xe0, 0, 0), (100, "he", 0, 0xe0, 0, 0), (102400000, "wd", 0, 0, 102400000, LOCK),
        (50, "hb", 0, 0x380, (1 << 64) - 2, 0), (50, "he", 0, 0x380, 0, (1 << 64) - 2)],
}
DEADLOCK_LOG = dump(DEADLOCK, "deadlock", 0, 1, before="==================[ DEADLOCK DETECTED ]==================",
                    after="==========================================================")

# The lock-free run: the same interrupt, its 0x300 inserts and returns inside the hold.
COMPLETES = {
    0: [(0, "la", 0, 1, LOCK, SITE), (300, "xe", 1, 0x900, 0, 0xc000000000434400), (50, "dc", 1, 0, 0xc000000000434400, 0),
        (30, "xe", 2, 0x300, 0xd000000000001000, 0xc0000000004340c0), (10, "pt", 2, 0x47f000, 0x10000201, 0x10000b01),
        (20, "hc", 2, 8, 0, 0x1234), (5, "pp", 2, 0x47f000, 0x10001701, 0), (3, "ho", 2, 1, 0xd000000000001000, 0),
        (2, "xx", 2, 0x300, 0xc0000000004340c0, 0), (40, "xx", 1, 0x900, 0xc000000000434400, 0), (100, "lr", 0, 0, LOCK, 0)],
    1: [(0, "hb", 0, 0xe0, 0, 0)],
}
COMPLETES_LOG = dump(COMPLETES, "exit", dumper=0, stopped=1)


def quiet(f, *a, **k):
    with redirect_stdout(io.StringIO()) as out, redirect_stderr(io.StringIO()) as err:
        r = f(*a, **k)
    return r, out.getvalue() + err.getvalue()


class Parse(unittest.TestCase):
    def test_dump_fields_and_deltas(self):
        d = tr.parse("noise before\n" + DEADLOCK_LOG)
        self.assertEqual((d.reason, d.stuck, d.header["dumper"], d.tb_hz), ("deadlock", 0, "1", 512000000))
        self.assertTrue(d.in_deadlock_report)
        e = d.events[0]
        self.assertEqual([x.tb for x in e[:3]], [1000, 1500, 1800])
        self.assertEqual((e[1].mn, e[1].c, e[1].a, e[1].b), ("la", 1, LOCK, SITE))
        self.assertEqual(d.sites[SITE], "src/run/irqtest.rs:136")
        self.assertEqual(d.lock_name(LOCK), "page_table_lock")
        self.assertEqual(d.hcalls[8], "H_ENTER")

    def test_the_last_complete_dump_wins(self):
        d = tr.parse(COMPLETES_LOG + DEADLOCK_LOG + "trace: dump begin: reason=x cpus=1\nT0 +1 mk 0\n")
        self.assertEqual(d.reason, "deadlock")
        self.assertFalse(tr.parse(COMPLETES_LOG).in_deadlock_report)

    def test_broken_dumps_are_errors(self):
        with self.assertRaisesRegex(tr.DumpError, "no 'trace: dump begin:'"):
            tr.parse("hashkernel: exit status 0\n")
        with self.assertRaisesRegex(tr.DumpError, "never ends"):
            tr.parse(DEADLOCK_LOG.split("trace: dump end")[0])
        with self.assertRaisesRegex(tr.DumpError, "no ring for CPU"):
            tr.parse(DEADLOCK_LOG.replace("cpus=2", "cpus=3"))
        with self.assertRaisesRegex(tr.DumpError, "not part of it"):
            tr.parse(DEADLOCK_LOG.replace("trace: hcall 8 H_ENTER", "lockdep: something else"))
        with self.assertRaisesRegex(tr.DumpError, "inside CPU 0's ring"):
            tr.parse(DEADLOCK_LOG.replace("T0 +300 xe", "T1 +300 xe", 1))


class Timeline(unittest.TestCase):
    def test_nesting_levels_and_spin(self):
        tl = tr.Timeline(tr.parse(DEADLOCK_LOG))
        cpu0 = {s.name: s for s in tl.slices if s.cpu == 0}
        self.assertEqual(cpu0["page_table_lock held"].level, 0)
        self.assertEqual(cpu0["0x900 decrementer"].level, 1)
        self.assertEqual(cpu0["0x300 data storage"].level, 2)
        self.assertEqual(cpu0["spin on page_table_lock"].level, 3)
        self.assertEqual(cpu0["0x100 system reset"].level, 4)
        seg = cpu0["0x380 data segment"]
        self.assertEqual((seg.level, seg.end - seg.start), (2, 20))
        self.assertEqual(cpu0["spin on page_table_lock"].args["holder"], "CPU 0, thread context")
        for n in ("page_table_lock held", "0x900 decrementer", "0x300 data storage", "spin on page_table_lock", "0x100 system reset"):
            self.assertIsNone(cpu0[n].end, n)
            self.assertTrue(cpu0[n].open.startswith("deadlocked"), cpu0[n].open)

    def test_spin_ends_at_the_acquire(self):
        log = dump({0: [(0, "lc", 0, 2, LOCK, SITE), (100, "la", 0, 1, LOCK, SITE), (10, "lr", 0, 0, LOCK, 0)]})
        tl = tr.Timeline(tr.parse(log))
        spin, held = tl.slices
        self.assertEqual((spin.name, spin.start, spin.end), ("spin on page_table_lock", 1000, 1100))
        self.assertEqual((held.level, held.start, held.end), (0, 1100, 1110))

    def test_wrapped_ring_exits_without_entries(self):
        # The ring lost the entries of the lock hold and of the 0x900 around its first events.
        log = dump({0: [(0, "pt", 1, 0, 1, 2), (10, "xx", 1, 0x900, 0, 0), (10, "lr", 0, 0, LOCK, 0), (10, "mk", 0, 3, 0, 0)]})
        d = tr.parse(log)
        tl = tr.Timeline(d)
        held, dec = sorted((s for s in tl.slices), key=lambda s: s.level)
        self.assertTrue(held.synthetic and dec.synthetic)
        self.assertEqual((held.name, held.level, held.start, held.end), ("page_table_lock held", 0, 1000, 1020))
        self.assertEqual((dec.name, dec.level, dec.end), ("0x900 decrementer", 1, 1010))
        take = [i for i in tl.instants if i.name == "PTE take"][0]
        self.assertEqual(take.level, 2)
        doc = tr.to_chrome(tl)
        self.assertEqual(tr.validate_chrome(doc), [])
        b = [e for e in doc["traceEvents"] if e["ph"] == "B"]
        self.assertEqual([e["name"] for e in b], ["page_table_lock held", "0x900 decrementer"])
        self.assertTrue(all(e["args"]["begun_before_trace"] for e in b))

    def test_parked_and_stopped_open_slices(self):
        tl = tr.Timeline(tr.parse(COMPLETES_LOG))
        ced = [s for s in tl.slices if s.cpu == 1][0]
        self.assertTrue(ced.open.startswith("stopped"), ced.open)
        log = dump({0: [(0, "mk", 0, 1, 0, 0)], 1: [(0, "hb", 0, 0xe0, 0, 0), (5, "xe", 1, 0x100, 0, 0)]}, "oops", dumper=0)
        tl = tr.Timeline(tr.parse(log))
        self.assertTrue(all(s.open.startswith("parked") for s in tl.slices), [s.open for s in tl.slices])


class Chrome(unittest.TestCase):
    def test_deadlock_json_is_valid_and_marks_the_open_slices(self):
        tl = tr.Timeline(tr.parse(DEADLOCK_LOG))
        doc = json.loads(json.dumps(tr.to_chrome(tl)))
        self.assertEqual(tr.validate_chrome(doc, deadlock_cpu=0), [])
        names = {(e["tid"], e["args"]["name"]) for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
        self.assertEqual(names, {(0, "CPU 0"), (1, "CPU 1")})
        opened = doc["otherData"]["open_slices"]
        self.assertEqual([o["name"] for o in opened if o["cpu"] == 0],
                         ["page_table_lock held", "0x900 decrementer", "0x300 data storage", "spin on page_table_lock", "0x100 system reset", "H_CEDE"])
        self.assertTrue(any(e["ph"] == "i" and e["s"] == "g" and e["name"].startswith("watchdog") for e in doc["traceEvents"]))
        # The 0x380 returned: a B and an E.
        seg = [e["ph"] for e in doc["traceEvents"] if e.get("name") == "0x380 data segment"]
        self.assertEqual(seg, ["B", "E"])

    def test_faults_per_second_counter(self):
        doc = tr.to_chrome(tr.Timeline(tr.parse(COMPLETES_LOG)))
        c = [e for e in doc["traceEvents"] if e["ph"] == "C"]
        self.assertTrue(c and all(e["name"] == "hash faults/s" for e in c))
        self.assertTrue(any(e["args"]["CPU 0"] > 0 for e in c))
        ho = [e for e in doc["traceEvents"] if e.get("name") == "hash_page: inserted_primary"]
        self.assertEqual(len(ho), 1)
        e300 = [e for e in doc["traceEvents"] if e["ph"] == "B" and e["name"] == "0x300 data storage"][0]
        self.assertEqual(e300["args"]["outcome"], "inserted_primary")

    def test_validator_rejects_broken_documents(self):
        good = tr.to_chrome(tr.Timeline(tr.parse(DEADLOCK_LOG)))
        self.assertEqual(tr.validate_chrome(good), [])
        # An end dropped: the B is left open and unmarked.
        bad = json.loads(json.dumps(good))
        i = next(k for k, e in enumerate(bad["traceEvents"]) if e["ph"] == "E" and e["name"] == "0x380 data segment")
        del bad["traceEvents"][i]
        self.assertTrue(any("never ends and is not marked" in p or "closes B" in p for p in tr.validate_chrome(bad)))
        # The mark removed from an open slice.
        bad = json.loads(json.dumps(good))
        for e in bad["traceEvents"]:
            if e["ph"] == "B" and e["name"] == "spin on page_table_lock":
                del e["args"]["open"]
        self.assertTrue(any("spin on page_table_lock" in p and "not marked" in p for p in tr.validate_chrome(bad)))
        # Ends out of order.
        bad = json.loads(json.dumps(good))
        evs = bad["traceEvents"]
        b = next(k for k, e in enumerate(evs) if e["ph"] == "B" and e["name"] == "0x380 data segment")
        evs.insert(b + 1, {"ph": "E", "pid": 1, "tid": 0, "ts": evs[b]["ts"], "name": "0x900 decrementer"})
        self.assertTrue(any("closes B" in p for p in tr.validate_chrome(bad)))
        # Time going backwards on a track.
        bad = json.loads(json.dumps(good))
        e = next(e for e in bad["traceEvents"] if e["ph"] == "E")
        e["ts"] = -1
        self.assertTrue(any("back in time" in p for p in tr.validate_chrome(bad)))
        # An E with no B at all, and no traceEvents.
        self.assertTrue(tr.validate_chrome({"traceEvents": [{"ph": "E", "ts": 0, "pid": 1, "tid": 0, "name": "x"}]}))
        self.assertEqual(tr.validate_chrome({}), ["no traceEvents list"])
        # An open slice on a CPU that is not the deadlocked one, unless parked.
        self.assertTrue(any("not the deadlocked CPU" in p for p in tr.validate_chrome(good, deadlock_cpu=1)))


class Check(unittest.TestCase):
    def run_check(self, log, expect):
        d = tr.parse(log)
        out = []
        return tr.check(d, tr.Timeline(d), expect, out.append), out

    def test_deadlock_found(self):
        problems, out = self.run_check(DEADLOCK_LOG, "deadlock")
        self.assertEqual(problems, [])
        self.assertTrue(any("no release between" in l for l in out))

    def test_completion_found(self):
        problems, out = self.run_check(COMPLETES_LOG, "completes")
        self.assertEqual(problems, [])
        self.assertTrue(any("1 with a decrementer whose 0x300 completed inside" in l for l in out), out)

    def test_each_check_fails_on_the_other_run(self):
        problems, _ = self.run_check(COMPLETES_LOG, "deadlock")
        self.assertTrue(any("not a deadlock dump" in p for p in problems), problems)
        problems, _ = self.run_check(DEADLOCK_LOG, "completes")
        self.assertTrue(any("deadlock report" in p for p in problems), problems)
        self.assertTrue(any("no lock hold with a completed 0x300" in p for p in problems), problems)

    def test_deadlock_check_needs_the_whole_story(self):
        # A release between the acquire and the contention: not the 2003 deadlock.
        evs = {0: list(DEADLOCK[0]), 1: DEADLOCK[1]}
        evs[0].insert(2, (10, "lr", 0, 0, LOCK, 0))
        problems, _ = self.run_check(dump(evs, "deadlock", 0, 1, before="DEADLOCK DETECTED", after="====="), "deadlock")
        self.assertTrue(any("no thread-context acquire" in p for p in problems), problems)
        # Outside the deadlock report, without the system reset.
        evs = {0: DEADLOCK[0][:-2], 1: DEADLOCK[1]}
        problems, _ = self.run_check(dump(evs, "deadlock", 0, 1), "deadlock")
        self.assertTrue(any("not inside the deadlock report" in p for p in problems), problems)
        self.assertTrue(any("no system reset" in p for p in problems), problems)

    def test_main_exit_codes(self):
        import tempfile
        with tempfile.TemporaryDirectory() as t:
            p = os.path.join(t, "log")
            with open(p, "w") as f:
                f.write(DEADLOCK_LOG)
            j, s = os.path.join(t, "x.json"), os.path.join(t, "x.svg")
            rc, out = quiet(tr.main, ["check", p, "--expect", "deadlock", "--json", j, "--svg", s])
            self.assertEqual(rc, 0, out)
            self.assertIn("trace-check: PASS (deadlock)", out)
            rc, out = quiet(tr.main, ["validate", j, "--deadlock-cpu", "0"])
            self.assertEqual(rc, 0, out)
            rc, out = quiet(tr.main, ["check", p, "--expect", "completes"])
            self.assertEqual(rc, 1)
            self.assertIn("trace-check: FAIL (completes)", out)
            with open(p, "w") as f:
                f.write("no dump here\n")
            rc, _ = quiet(tr.main, ["json", p, "-o", j])
            self.assertEqual(rc, 1)


class Svg(unittest.TestCase):
    def test_deadlock_svg(self):
        svg = tr.to_svg(tr.Timeline(tr.parse(DEADLOCK_LOG)), "auto", "test")
        root = ET.fromstring(svg)
        self.assertTrue(root.tag.endswith("svg"))
        text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
        for want in ("CPU 0", "CPU 1", "stuck", "page_table_lock held — never returns", "⋯ 200 ms"):
            self.assertIn(want, text)
        # Self-contained: no external references, no scripts.
        self.assertNotIn("<script", svg)
        self.assertNotIn("xlink:href", svg)
        self.assertNotIn("http://", svg.replace('xmlns="http://www.w3.org/2000/svg"', ""))

    def test_completes_svg_window(self):
        tl = tr.Timeline(tr.parse(COMPLETES_LOG))
        a, b, what = tr.auto_window(tl)
        self.assertIn("hash fault completed", what)
        self.assertLessEqual(a, 1000)
        self.assertGreaterEqual(b, tl.dump.events[0][-1].tb)
        ET.fromstring(tr.to_svg(tl, "all"))
        ET.fromstring(tr.to_svg(tl, "0:0.5"))
        with self.assertRaises(tr.DumpError):
            tr.to_svg(tl, "later")

    def test_time_map_breaks_only_long_idle_gaps(self):
        # Events 1 µs apart, then 200 ms of nothing, then more: one break, monotonic x.
        t = [i * 512 for i in range(20)] + [102400000 + i * 512 for i in range(20)]
        m = tr.TimeMap(t, t[0], t[-1], 100, 1000)
        self.assertEqual(len(m.breaks), 1)
        xs = [m.x(x) for x in t]
        self.assertEqual(xs, sorted(xs))
        self.assertAlmostEqual(m.x(t[-1]), 1100, places=3)
        # Evenly spread events: no break.
        t = [i * 512 for i in range(50)]
        self.assertEqual(tr.TimeMap(t, t[0], t[-1], 0, 1000).breaks, [])


class Scan(unittest.TestCase):
    def test_the_scan_matches_the_kernels(self):
        # The same cases as src/trace/event.rs scan_* tests.
        def evs(seq):
            return [tr.Ev(0, i, i, mn, d, c, a, 0) for i, (mn, d, c, a) in enumerate(seq)]
        ok = evs([("la", 0, 1, LOCK), ("xe", 1, 0x900, 0), ("xe", 2, 0x380, 0), ("xx", 2, 0x380, 0), ("xe", 2, 0x300, 0),
                  ("xx", 2, 0x300, 0), ("xx", 1, 0x900, 0), ("lr", 0, 0, LOCK), ("la", 0, 1, LOCK), ("lr", 0, 0, LOCK)])
        self.assertEqual(tr.scan_lock_holds(ok, LOCK), (2, 1, None, (0, 7)))
        dl = evs([("la", 0, 1, LOCK), ("xe", 1, 0x900, 0), ("dc", 1, 0, 0), ("xe", 2, 0x300, 0), ("lc", 2, 1, LOCK), ("xe", 3, 0x100, 0)])
        self.assertEqual(tr.scan_lock_holds(dl, LOCK)[2], (0, 1, 3, 4))
        rel = evs([("la", 0, 1, LOCK), ("lr", 0, 0, LOCK), ("xe", 1, 0x900, 0), ("xe", 2, 0x300, 0), ("lc", 2, 1, LOCK)])
        self.assertIsNone(tr.scan_lock_holds(rel, LOCK)[2])
        outside = evs([("la", 0, 1, LOCK), ("xe", 1, 0x900, 0), ("xx", 1, 0x900, 0), ("xe", 1, 0x300, 0), ("lc", 1, 1, LOCK)])
        self.assertIsNone(tr.scan_lock_holds(outside, LOCK)[2])


if __name__ == "__main__":
    verbosity = 2 if "-v" in sys.argv else 1
    result = unittest.TextTestRunner(verbosity=verbosity).run(unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    failed = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
