//! Everything that does not touch QEMU: argument parsing, instruction decoding, the per-vCPU
//! window stack machine, the statistics and the output format. Host-tested (`cargo test`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

// ------------------------------------------------------------------------------- config

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    Big,
    Little,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Record only windows that begin while a `tdi 0,0,TAG` marker tag is active.
    Markers,
    /// Record every window, under tag 0.
    All,
    /// No windows: the host's monotonic time between a marker that starts a tag and the one
    /// that ends it, per (tag, vCPU). Only marker instructions get a callback, so the guest
    /// runs at nearly its normal speed (a second clock beside the guest's time base).
    Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryRule {
    /// A vector address starts a window only if the instruction executed before it on that
    /// vCPU neither precedes it in memory nor branches to it directly (see `Cpu::exec`).
    Strict,
    /// Every execution of a vector address starts a window.
    Any,
}

pub const DEFAULT_BASES: [u64; 2] = [0x0, 0xc000_0000_0000_4000];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub out: String,
    pub mode: Mode,
    pub endian: Endian,
    pub bases: Vec<u64>,
    pub detail: bool,
    pub after: u64,
    pub start: Option<u64>,
    pub entry: EntryRule,
    /// Record the PCs of the first `trace_max` recorded windows of this vector, per vCPU.
    pub trace: Option<u16>,
    pub trace_max: u32,
    /// Note (M line) the detail sequence number when this address first executes.
    pub mark: Option<u64>,
    /// Rewrite the output file whenever a tag ends (else only at exit).
    pub flush_at_tag_end: bool,
}

pub const USAGE: &str = "insncount arguments: out=FILE (required), mode=markers|all|time, endian=big|little, \
vbase=ADDR[:ADDR...] (repeatable; default 0x0:0xc000000000004000), detail=on|off, after=N, \
start=ADDR, entry=strict|any, trace=VECTOR[:N], mark=ADDR, flush=tag|exit";

pub fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn parse_bool(k: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{k}={v}: expected on or off")),
    }
}

pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Config, String> {
    let mut c = Config {
        out: String::new(),
        mode: Mode::Markers,
        endian: Endian::Big,
        bases: Vec::new(),
        detail: false,
        after: 0,
        start: None,
        entry: EntryRule::Strict,
        trace: None,
        trace_max: 4,
        mark: None,
        flush_at_tag_end: true,
    };
    for a in args {
        let a = a.as_ref();
        let (k, v) = a.split_once('=').ok_or_else(|| format!("'{a}' is not KEY=VALUE; {USAGE}"))?;
        match k {
            "out" if !v.is_empty() => c.out = v.to_string(),
            "mode" => {
                c.mode = match v {
                    "markers" => Mode::Markers,
                    "all" => Mode::All,
                    "time" => Mode::Time,
                    _ => return Err(format!("mode={v}: expected markers, all or time")),
                }
            }
            "endian" => {
                c.endian = match v {
                    "big" | "be" => Endian::Big,
                    "little" | "le" => Endian::Little,
                    _ => return Err(format!("endian={v}: expected big or little")),
                }
            }
            "vbase" | "vbases" => {
                // ':' separates several bases because QEMU's option parser splits at ','.
                for b in v.split(':') {
                    let n = parse_num(b).ok_or_else(|| format!("vbase: bad address '{b}'"))?;
                    if !c.bases.contains(&n) {
                        c.bases.push(n);
                    }
                }
            }
            "detail" => c.detail = parse_bool(k, v)?,
            "after" => c.after = parse_num(v).ok_or_else(|| format!("after={v}: not a number"))?,
            "start" => c.start = Some(parse_num(v).ok_or_else(|| format!("start={v}: not an address"))?),
            "flush" => {
                c.flush_at_tag_end = match v {
                    "tag" => true,
                    "exit" => false,
                    _ => return Err(format!("flush={v}: expected tag or exit")),
                }
            }
            "mark" => c.mark = Some(parse_num(v).ok_or_else(|| format!("mark={v}: not an address"))?),
            "entry" => {
                c.entry = match v {
                    "strict" => EntryRule::Strict,
                    "any" => EntryRule::Any,
                    _ => return Err(format!("entry={v}: expected strict or any")),
                }
            }
            "trace" => {
                let (vec, n) = v.split_once(':').unwrap_or((v, "4"));
                let off = parse_num(vec).filter(|&o| is_vector_offset(o)).ok_or_else(|| format!("trace={v}: not a vector offset"))?;
                c.trace = Some(off as u16);
                c.trace_max = parse_num(n).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| format!("trace={v}: bad count"))?;
            }
            _ => return Err(format!("unknown argument '{a}'; {USAGE}")),
        }
    }
    if c.out.is_empty() {
        return Err(format!("out=FILE is required; {USAGE}"));
    }
    if c.bases.is_empty() {
        c.bases = DEFAULT_BASES.to_vec();
    }
    Ok(c)
}

// ------------------------------------------------------------------------------- decoding

/// Book3S interrupt vector offsets from a vector base.
pub fn is_vector_offset(off: u64) -> bool {
    matches!(off, 0x100 | 0x200 | 0x300 | 0x380 | 0x400 | 0x480 | 0x500 | 0x600 | 0x700 | 0x800
        | 0x900 | 0x980 | 0xa00 | 0xb00 | 0xc00 | 0xd00)
        || ((0xe00..=0xf80).contains(&off) && off % 0x20 == 0)
        || ((0x1000..=0x1700).contains(&off) && off % 0x100 == 0)
}

/// The vector offset if `pc` is a vector entry for one of `bases`.
pub fn vector_of(pc: u64, bases: &[u64]) -> Option<u16> {
    bases.iter().find_map(|&b| {
        let off = pc.wrapping_sub(b);
        is_vector_offset(off).then_some(off as u16)
    })
}

/// The instruction word from the bytes QEMU hands the plugin (guest memory order).
pub fn word(bytes: &[u8], e: Endian) -> Option<u32> {
    let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(match e {
        Endian::Big => u32::from_be_bytes(b),
        Endian::Little => u32::from_le_bytes(b),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Plain,
    /// `rfid`, `hrfid` or `rfscv`: ends the innermost window.
    Return,
    /// `sc` (any LEV; not `scv`).
    Sc,
    /// `tdi 0,0,IMM`: IMM = 0 ends the tag, else starts tag IMM.
    Marker(u16),
    /// `or N,N,N` with N != 0, a priority hint (HMT_MEDIUM is `or 2,2,2`). Counted like any
    /// other instruction; noted per window because QEMU 7.2 ends the translation block after
    /// it with EXCP_HLT (gen_pause), so a gdb single-step executes it *and* the next
    /// instruction in one step: stepping methods that do not know this undercount by one each.
    Hint,
}

pub fn classify(w: u32) -> Op {
    const XL: u32 = 0xfc00_07fe; // primary opcode + extended opcode of XL-form
    match w & XL {
        0x4c00_0024 /* rfid */ | 0x4c00_0224 /* hrfid */ | 0x4c00_00a4 /* rfscv */ => return Op::Return,
        _ => {}
    }
    if w & 0xfc00_0003 == 0x4400_0002 {
        return Op::Sc;
    }
    // tdi with TO=0 and RA=0: QEMU translates TO=0 to nothing, so it is a free no-op.
    if w & 0xffff_0000 == 0x0800_0000 {
        return Op::Marker(w as u16);
    }
    let (rs, ra, rb) = ((w >> 21) & 31, (w >> 16) & 31, (w >> 11) & 31);
    if w & 0xfc00_07ff == 0x7c00_0378 && rs == ra && rs == rb && rs != 0 {
        return Op::Hint;
    }
    Op::Plain
}

/// Target of a direct branch (`b`, `bc` in any form, taken or not), if `w` is one.
pub fn branch_target(w: u32, pc: u64) -> Option<u64> {
    let aa = w & 2 != 0;
    let disp = match w >> 26 {
        18 => (((w & 0x03ff_fffc) << 6) as i32 >> 6) as i64,
        16 => (w & 0xfffc) as u16 as i16 as i64,
        _ => return None,
    };
    Some(if aa { disp as u64 } else { pc.wrapping_add(disp as u64) })
}

/// What the exec callback needs to know about one guest instruction; built once at
/// translation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub pc: u64,
    pub word: u32,
    pub op: Op,
    pub vector: Option<u16>,
    pub target: Option<u64>,
    pub is_start: bool,
    pub is_mark: bool,
}

impl Insn {
    pub fn decode(pc: u64, bytes: &[u8], cfg: &Config) -> Insn {
        let w = if bytes.len() == 4 { word(bytes, cfg.endian) } else { None };
        Insn {
            pc,
            word: w.unwrap_or(0),
            op: w.map_or(Op::Plain, classify),
            vector: vector_of(pc, &cfg.bases),
            target: w.and_then(|w| branch_target(w, pc)),
            is_start: cfg.start == Some(pc),
            is_mark: cfg.mark == Some(pc),
        }
    }
}

// ------------------------------------------------------------------------------- windows

/// Deeper than this, the oldest open window is abandoned (windows that never see their rfid,
/// e.g. a vector that does not return, must not grow the stack without bound).
pub const MAX_DEPTH: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub vector: u16,
    pub entry: u64,
    pub tag: u32,
    pub insns: u64,
    pub sc: u32,
    /// Op::Hint instructions in the window.
    pub hints: u32,
    /// 1 = not nested in another window.
    pub depth: u32,
    pub record: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub began: bool,
    /// A window was abandoned to make room (MAX_DEPTH).
    pub dropped: bool,
    /// A return with no open window.
    pub orphan_return: bool,
    /// The window this instruction closed (recorded or not).
    pub closed: Option<Window>,
    /// A marker ended an active tag: the caller flushes the output.
    pub tag_ended: bool,
    /// (pc, word) of every instruction of the closed window, if it was traced.
    pub trace: Vec<(u64, u32)>,
    /// This instruction is the first one after a window's return: where it returned to
    /// (for a fault, the faulting instruction, executed again).
    pub returned_to: Option<u64>,
}

/// One vCPU's state. Only that vCPU's thread touches it.
#[derive(Debug)]
pub struct Cpu {
    stack: Vec<Window>,
    /// Parallel to `stack`: the instructions of a traced window.
    traces: Vec<Option<Vec<(u64, u32)>>>,
    trace_vec: Option<u16>,
    trace_left: u32,
    /// mode=all: every window is under tag 0 and marker-like words are ignored (an LE decoder
    /// reading big-endian firmware sees `b +8` as `tdi 0,0,72`).
    markers: bool,
    tag: u32,
    prev: Option<(u64, Option<u64>)>,
    after_return: bool,
}

impl Cpu {
    pub fn new(cfg: &Config) -> Cpu {
        Cpu {
            stack: Vec::with_capacity(MAX_DEPTH),
            traces: Vec::with_capacity(MAX_DEPTH),
            trace_vec: cfg.trace,
            trace_left: cfg.trace_max,
            markers: cfg.mode == Mode::Markers,
            tag: 0,
            prev: None,
            after_return: false,
        }
    }

    pub fn depth(&self) -> usize {
        self.stack.len()
    }
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// Accounts for one executed instruction. `record(tag)` decides whether a window that
    /// begins now is recorded; it is called only when one begins.
    pub fn exec(&mut self, i: &Insn, rule: EntryRule, record: &mut dyn FnMut(u32) -> bool) -> Step {
        let mut s = Step::default();
        if std::mem::take(&mut self.after_return) {
            s.returned_to = Some(i.pc);
        }
        if let Some(v) = i.vector {
            // The plugin API (v1) reports no interrupts, so an interrupt is inferred: the
            // vector's first instruction executed right after something that neither falls
            // through nor branches directly to it. That keeps firmware or kernel code that
            // merely lives at a vector address (VOF at 0x100.., a call to it) out.
            let entered = match (rule, self.prev) {
                (EntryRule::Any, _) => true,
                (EntryRule::Strict, None) => false, // a vCPU's first instruction: reset/start
                (EntryRule::Strict, Some((ppc, ptarget))) => ppc.wrapping_add(4) != i.pc && ptarget != Some(i.pc),
            };
            if entered {
                if self.stack.len() == MAX_DEPTH {
                    self.stack.remove(0);
                    self.traces.remove(0);
                    for w in &mut self.stack {
                        w.depth -= 1;
                    }
                    s.dropped = true;
                }
                let rec = record(self.tag);
                let traced = rec && self.trace_vec == Some(v) && self.trace_left > 0;
                if traced {
                    self.trace_left -= 1;
                }
                self.traces.push(traced.then(Vec::new));
                self.stack.push(Window {
                    vector: v,
                    entry: i.pc,
                    tag: self.tag,
                    insns: 0,
                    sc: 0,
                    hints: 0,
                    depth: self.stack.len() as u32 + 1,
                    record: rec,
                });
                s.began = true;
            }
        }
        if let Some(top) = self.stack.last_mut() {
            top.insns += 1;
            match i.op {
                Op::Sc => top.sc += 1,
                Op::Hint => top.hints += 1,
                _ => {}
            }
            if let Some(Some(t)) = self.traces.last_mut() {
                t.push((i.pc, i.word));
            }
        }
        match i.op {
            Op::Return => match self.stack.pop() {
                Some(w) => {
                    self.after_return = true;
                    s.closed = Some(w);
                    s.trace = self.traces.pop().flatten().unwrap_or_default();
                }
                None => s.orphan_return = true,
            },
            Op::Marker(0) if self.markers => {
                s.tag_ended = self.tag != 0;
                self.tag = 0;
            }
            Op::Marker(t) if self.markers => self.tag = t as u32,
            _ => {}
        }
        self.prev = Some((i.pc, i.target));
        s
    }
}

// ------------------------------------------------------------------------------- statistics

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub windows: u64,
    pub min: u64,
    pub max: u64,
    pub sum: u64,
    pub insns: BTreeMap<u64, u64>,
    pub sc: BTreeMap<u32, u64>,
    /// (sc, insns) → occurrences: selects e.g. the windows with exactly one hypercall.
    pub joint: BTreeMap<(u32, u64), u64>,
}

impl Stats {
    pub fn add(&mut self, insns: u64, sc: u32) {
        if self.windows == 0 || insns < self.min {
            self.min = insns;
        }
        self.max = self.max.max(insns);
        self.windows += 1;
        self.sum += insns;
        *self.insns.entry(insns).or_default() += 1;
        *self.sc.entry(sc).or_default() += 1;
        *self.joint.entry((sc, insns)).or_default() += 1;
    }

    pub fn merge(&mut self, o: &Stats) {
        if o.windows == 0 {
            return;
        }
        if self.windows == 0 || o.min < self.min {
            self.min = o.min;
        }
        self.max = self.max.max(o.max);
        self.windows += o.windows;
        self.sum += o.sum;
        for (k, v) in &o.insns {
            *self.insns.entry(*k).or_default() += v;
        }
        for (k, v) in &o.sc {
            *self.sc.entry(*k).or_default() += v;
        }
        for (k, v) in &o.joint {
            *self.joint.entry(*k).or_default() += v;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detail {
    pub seq: u64,
    pub vcpu: u32,
    pub w: Window,
    pub trace: Vec<(u64, u32)>,
    /// Where the return went (0 until the vCPU has executed it).
    pub ret: u64,
}

/// Aggregates by (tag, vector).
pub type Agg = BTreeMap<(u32, u16), Stats>;

pub fn merge_agg(into: &mut Agg, from: &Agg) {
    for (k, s) in from {
        into.entry(*k).or_default().merge(s);
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuCounters {
    pub began: u64,
    pub closed: u64,
    pub recorded: u64,
    pub dropped: u64,
    pub orphan_returns: u64,
}

pub fn fmt_vector(v: u16) -> String {
    format!("{v:#x}")
}

/// The output file (format: tools/insncount/README.md).
/// `mark`: (detail sequence number, vCPU) when `cfg.mark` first executed.
pub fn render(cfg: &Config, reason: &str, flushes: u64, agg: &Agg, details: &[Detail], cpus: &[CpuCounters], mark: Option<(u64, u32)>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# insncount 1: guest instructions per exception window, vector entry to rfid/hrfid/rfscv inclusive");
    let _ = writeln!(o, "# S tag vector windows min max sum | H tag vector insns count | C tag vector sc count | J tag vector sc insns count");
    let _ = writeln!(o, "# W seq vcpu tag vector insns sc depth entry return hints | M addr seq vcpu | T seq n pc word | V vcpu began closed recorded open dropped orphan_returns | P key value | F reason flushes");
    let _ = writeln!(o, "P mode {}", match cfg.mode { Mode::Markers => "markers", Mode::All => "all", Mode::Time => "time" });
    let _ = writeln!(o, "P endian {}", match cfg.endian { Endian::Big => "big", Endian::Little => "little" });
    for b in &cfg.bases {
        let _ = writeln!(o, "P vbase {b:#x}");
    }
    let _ = writeln!(o, "P entry {}", match cfg.entry { EntryRule::Strict => "strict", EntryRule::Any => "any" });
    let _ = writeln!(o, "P after {}", cfg.after);
    let _ = writeln!(o, "P start {}", cfg.start.map_or("-".to_string(), |a| format!("{a:#x}")));
    let _ = writeln!(o, "P mark {}", cfg.mark.map_or("-".to_string(), |a| format!("{a:#x}")));
    let _ = writeln!(o, "P flush {}", if cfg.flush_at_tag_end { "tag" } else { "exit" });
    let _ = writeln!(o, "P detail {}", if cfg.detail { "on" } else { "off" });
    let _ = writeln!(o, "P trace {}", cfg.trace.map_or("-".to_string(), |v| format!("{v:#x}:{}", cfg.trace_max)));
    for ((tag, v), s) in agg {
        let v = fmt_vector(*v);
        let _ = writeln!(o, "S {tag} {v} {} {} {} {}", s.windows, s.min, s.max, s.sum);
        for (n, c) in &s.insns {
            let _ = writeln!(o, "H {tag} {v} {n} {c}");
        }
        for (n, c) in &s.sc {
            let _ = writeln!(o, "C {tag} {v} {n} {c}");
        }
        for ((sc, n), c) in &s.joint {
            let _ = writeln!(o, "J {tag} {v} {sc} {n} {c}");
        }
    }
    for d in details {
        let w = &d.w;
        if cfg.detail || !d.trace.is_empty() {
            let _ = writeln!(o, "W {} {} {} {} {} {} {} {:#x} {:#x} {}", d.seq, d.vcpu, w.tag, fmt_vector(w.vector), w.insns, w.sc, w.depth, w.entry, d.ret, w.hints);
        }
        for (n, (pc, word)) in d.trace.iter().enumerate() {
            let _ = writeln!(o, "T {} {} {pc:#x} {word:08x}", d.seq, n + 1);
        }
    }
    for (i, c) in cpus.iter().enumerate() {
        let open = c.began.saturating_sub(c.closed + c.dropped);
        let _ = writeln!(o, "V {i} {} {} {} {open} {} {}", c.began, c.closed, c.recorded, c.dropped, c.orphan_returns);
    }
    if let (Some(a), Some((seq, vcpu))) = (cfg.mark, mark) {
        let _ = writeln!(o, "M {a:#x} {seq} {vcpu}");
    }
    let _ = writeln!(o, "F {reason} {flushes}");
    o
}

// ------------------------------------------------------------------------------- mode=time

/// One vCPU's open span under `mode=time`: the tag and the host time it began.
pub type Span = Option<(u32, u64)>;

/// Per (tag, vCPU): spans closed and their total host nanoseconds.
pub type TimeAgg = BTreeMap<(u32, u32), (u64, u64)>;

/// A marker with `tag` at host time `now` on a vCPU whose open span is `open`: a non-zero tag
/// opens a span (closing any still open, which then counts under its own tag), 0 closes it.
/// Returns the span closed, as (tag, nanoseconds).
pub fn time_marker(open: &mut Span, tag: u16, now: u64) -> Option<(u32, u64)> {
    let closed = open.take().map(|(t, t0)| (t, now.saturating_sub(t0)));
    if tag != 0 {
        *open = Some((tag as u32, now));
    }
    closed
}

/// `mode=time` output: `K tag vcpu spans ns` per (tag, vCPU), then `F reason flushes`.
pub fn render_time(reason: &str, flushes: u64, agg: &TimeAgg) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# insncount 1 mode=time: host monotonic time between a tag's start and end markers");
    let _ = writeln!(o, "# K tag vcpu spans ns | F reason flushes");
    let _ = writeln!(o, "P mode time");
    for ((tag, vcpu), (spans, ns)) in agg {
        let _ = writeln!(o, "K {tag} {vcpu} {spans} {ns}");
    }
    let _ = writeln!(o, "F {reason} {flushes}");
    o
}

// ------------------------------------------------------------------------------- tests

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Config {
        parse_args(args).unwrap()
    }

    #[test]
    fn time_spans_run_from_a_tag_to_its_end_marker() {
        assert_eq!(cfg(&["out=x", "mode=time"]).mode, Mode::Time);
        let mut open = None;
        assert_eq!(time_marker(&mut open, 0, 5), None, "an end marker with nothing open closes nothing");
        assert_eq!(time_marker(&mut open, 7, 100), None);
        assert_eq!(time_marker(&mut open, 0, 350), Some((7, 250)));
        assert_eq!(open, None);
        // A new tag while one is open closes the old one under its own tag.
        time_marker(&mut open, 3, 1000);
        assert_eq!(time_marker(&mut open, 4, 1010), Some((3, 10)));
        assert_eq!(time_marker(&mut open, 0, 1030), Some((4, 20)));
        let mut agg = TimeAgg::new();
        agg.insert((7, 1), (2, 500));
        assert_eq!(render_time("exit", 1, &agg).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(), ["P mode time", "K 7 1 2 500", "F exit 1"]);
    }

    const RFID: u32 = 0x4c00_0024;
    const NOP: u32 = 0x6000_0000;
    const SC1: u32 = 0x4400_0022;

    fn ins(pc: u64, w: u32, c: &Config) -> Insn {
        Insn::decode(pc, &w.to_be_bytes(), c)
    }

    /// Runs a PC/word trace through one Cpu; returns the closed windows.
    fn run(c: &Config, trace: &[(u64, u32)], rec: &mut dyn FnMut(u32) -> bool) -> (Vec<Window>, Vec<Step>) {
        let mut cpu = Cpu::new(c);
        let mut closed = Vec::new();
        let mut steps = Vec::new();
        for &(pc, w) in trace {
            let s = cpu.exec(&ins(pc, w, c), c.entry, rec);
            if let Some(w) = s.closed {
                closed.push(w);
            }
            steps.push(s);
        }
        (closed, steps)
    }

    #[test]
    fn args() {
        let c = cfg(&["out=/tmp/x"]);
        assert_eq!(c.bases, DEFAULT_BASES.to_vec());
        assert_eq!((c.mode, c.endian, c.detail, c.after, c.start, c.entry), (Mode::Markers, Endian::Big, false, 0, None, EntryRule::Strict));
        let c = cfg(&["out=f", "mode=all", "endian=little", "vbase=0xc000000000004000", "vbase=0x0:0x100", "detail=on", "after=10", "start=0xc000000000001234", "entry=any"]);
        assert_eq!(c.bases, vec![0xc000_0000_0000_4000, 0, 0x100]);
        assert_eq!((c.mode, c.endian, c.detail, c.after, c.start, c.entry), (Mode::All, Endian::Little, true, 10, Some(0xc000_0000_0000_1234), EntryRule::Any));
        assert!(parse_args(&["mode=all"]).is_err());
        assert!(parse_args(&["out=f", "mode=some"]).is_err());
        assert!(parse_args(&["out=f", "bogus=1"]).is_err());
        assert!(parse_args(&["out=f", "vbase=zz"]).is_err());
        assert!(parse_args(&["out=f", "noequals"]).is_err());
        let c = cfg(&["out=f", "trace=0x380:2"]);
        assert_eq!((c.trace, c.trace_max), (Some(0x380), 2));
        assert_eq!(cfg(&["out=f", "trace=0x300"]).trace_max, 4);
        assert!(parse_args(&["out=f", "trace=0x310"]).is_err());
        assert_eq!(parse_num("1_000"), Some(1000));
        assert!(cfg(&["out=f"]).flush_at_tag_end);
        assert!(!cfg(&["out=f", "flush=exit"]).flush_at_tag_end);
        assert!(parse_args(&["out=f", "flush=never"]).is_err());
    }

    #[test]
    fn vectors() {
        let b = DEFAULT_BASES;
        for off in [0x100u64, 0x200, 0x300, 0x380, 0x400, 0x480, 0x500, 0x600, 0x700, 0x800, 0x900, 0x980, 0xa00, 0xb00, 0xc00, 0xd00, 0xe00, 0xe20, 0xea0, 0xf00, 0xf80, 0x1000, 0x1500, 0x1700] {
            assert_eq!(vector_of(off, &b), Some(off as u16), "{off:#x}");
            assert_eq!(vector_of(0xc000_0000_0000_4000 + off, &b), Some(off as u16));
        }
        for off in [0u64, 0x104, 0x280, 0x320, 0xe10, 0xfa0, 0x1080, 0x1800, 0x4300] {
            assert_eq!(vector_of(off, &b), None, "{off:#x}");
        }
        // 0xc000000000000300 is Linux's real-mode vector's link address, not an entry point.
        assert_eq!(vector_of(0xc000_0000_0000_0300, &b), None);
    }

    #[test]
    fn decoding() {
        assert_eq!(classify(RFID), Op::Return);
        assert_eq!(classify(0x4c00_0224), Op::Return); // hrfid
        assert_eq!(classify(0x4c00_00a4), Op::Return); // rfscv
        assert_eq!(classify(0x4c00_0064), Op::Plain); // rfi (32-bit), not used on Book3S-64
        assert_eq!(classify(0x4c00_012c), Op::Plain); // isync
        assert_eq!(classify(SC1), Op::Sc);
        assert_eq!(classify(0x4400_0002), Op::Sc); // sc 0
        assert_eq!(classify(0x4400_0001), Op::Plain); // scv 0
        assert_eq!(classify(0x0800_0000), Op::Marker(0));
        assert_eq!(classify(0x0800_1234), Op::Marker(0x1234));
        assert_eq!(classify(0x0800_ffff), Op::Marker(0xffff));
        assert_eq!(classify(0x0820_0001), Op::Plain); // tdi 1,0,1: a real trap
        assert_eq!(classify(0x0803_0001), Op::Plain); // tdi 0,3,1
        assert_eq!(classify(NOP), Op::Plain);
        assert_eq!(classify(0x7c42_1378), Op::Hint); // or 2,2,2 (HMT_MEDIUM)
        assert_eq!(classify(0x7c21_0b78), Op::Hint); // or 1,1,1 (HMT_LOW)
        assert_eq!(classify(0x7c00_0378), Op::Plain); // or 0,0,0
        assert_eq!(classify(0x7c42_1379), Op::Plain); // or. 2,2,2
        assert_eq!(classify(0x7c43_1378), Op::Plain); // or 3,2,2 (mr)
        // Little endian: the same rfid as bytes in memory order.
        assert_eq!(word(&[0x24, 0x00, 0x00, 0x4c], Endian::Little), Some(RFID));
        assert_eq!(word(&[0x4c, 0x00, 0x00, 0x24], Endian::Big), Some(RFID));
        assert_eq!(word(&[1, 2], Endian::Big), None);
        let c = cfg(&["out=f", "endian=little"]);
        assert_eq!(Insn::decode(0x10, &RFID.to_le_bytes(), &c).op, Op::Return);
        assert_eq!(Insn::decode(0x10, &RFID.to_be_bytes(), &c).op, Op::Plain);
    }

    #[test]
    fn branches() {
        // b +8, b -4, ba 0x300, bl +0x100, bc (beq +16), bca, bclr (not direct)
        assert_eq!(branch_target(0x4800_0008, 0x1000), Some(0x1008));
        assert_eq!(branch_target(0x4bff_fffc, 0x1000), Some(0xffc));
        assert_eq!(branch_target(0x4800_0302, 0x1000), Some(0x300));
        assert_eq!(branch_target(0x4800_0101, 0x1000), Some(0x1100));
        assert_eq!(branch_target(0x4182_0010, 0x1000), Some(0x1010));
        assert_eq!(branch_target(0x4182_fff0, 0x1000), Some(0xff0));
        assert_eq!(branch_target(0x4182_0302, 0x1000), Some(0x300));
        assert_eq!(branch_target(0x4e80_0020, 0x1000), None); // blr
        assert_eq!(branch_target(0x4e80_0420, 0x1000), None); // bctr
        assert_eq!(branch_target(0x4bff_fffc, 0xc000_0000_0040_0000), Some(0xc000_0000_003f_fffc));
    }

    #[test]
    fn one_window_counts_vector_through_rfid() {
        let c = cfg(&["out=f", "mode=all"]);
        let k = 0xc000_0000_0040_0000u64;
        // thread code, fault → 0x300 (3 insns + sc + rfid), back to thread code.
        let t = [(k, NOP), (k + 4, NOP), (0x300, NOP), (0x304, 0x7c42_1378), (0x308, SC1), (0x30c, NOP), (0x310, RFID), (k + 4, NOP)];
        let (closed, _) = run(&c, &t, &mut |_| true);
        assert_eq!(closed.len(), 1);
        let w = closed[0];
        assert_eq!((w.vector, w.insns, w.sc, w.hints, w.depth, w.entry, w.tag, w.record), (0x300, 5, 1, 1, 1, 0x300, 0, true));
        let (_, steps) = run(&c, &t, &mut |_| true);
        assert_eq!(steps.iter().filter_map(|s| s.returned_to).collect::<Vec<_>>(), vec![k + 4]);
    }

    #[test]
    fn nested_window_is_attributed_to_the_inner_one() {
        let c = cfg(&["out=f", "mode=all"]);
        let a = 0xc000_0000_0000_4000u64;
        let t = [
            (0x1000, NOP),
            (a + 0x300, NOP),   // outer 1
            (a + 0x304, NOP),   // outer 2 (faults)
            (a + 0x380, NOP),   // inner 1
            (a + 0x384, SC1),   // inner 2
            (a + 0x388, RFID),  // inner 3
            (a + 0x304, NOP),   // outer 3 (re-executed)
            (a + 0x308, RFID),  // outer 4
            (0x1004, NOP),
        ];
        let (closed, _) = run(&c, &t, &mut |_| true);
        assert_eq!(closed.len(), 2);
        assert_eq!((closed[0].hints, closed[1].hints), (0, 0));
        assert_eq!((closed[0].vector, closed[0].insns, closed[0].sc, closed[0].depth), (0x380, 3, 1, 2));
        assert_eq!((closed[1].vector, closed[1].insns, closed[1].sc, closed[1].depth), (0x300, 4, 0, 1));
    }

    #[test]
    fn fall_through_and_direct_branches_do_not_enter() {
        let c = cfg(&["out=f", "mode=all"]);
        // Firmware-like code at low addresses: straight through 0x2fc → 0x300, then bl 0x900
        // from 0x410 (0x480004f1 = bl +0x4f0).
        let t = [(0x2f8, NOP), (0x2fc, NOP), (0x300, NOP), (0x304, NOP), (0x410, 0x4800_04f1), (0x900, NOP), (0x904, 0x4e80_0020)];
        let (_, steps) = run(&c, &t, &mut |_| true);
        assert!(steps.iter().all(|s| !s.began));
        // A vCPU's very first instruction (reset at 0x100) is not an interrupt either.
        let (_, steps) = run(&c, &[(0x100, NOP)], &mut |_| true);
        assert!(!steps[0].began);
        // entry=any takes every vector address.
        let c = cfg(&["out=f", "mode=all", "entry=any"]);
        let (_, steps) = run(&c, &[(0x100, NOP), (0x2fc, NOP), (0x300, NOP)], &mut |_| true);
        assert!(steps[0].began && steps[2].began);
        // An interrupt taken right after an rfid (pending, EE just enabled) is an entry.
        let c = cfg(&["out=f", "mode=all"]);
        let (_, steps) = run(&c, &[(0x5000, NOP), (0x5004, RFID), (0x900, NOP)], &mut |_| true);
        assert!(steps[1].orphan_return && steps[2].began);
    }

    #[test]
    fn markers_select_windows_by_tag() {
        let c = cfg(&["out=f"]);
        let k = 0x40_0000u64;
        let t = [
            (k, NOP),
            (k + 4, 0x0800_0007), // tag 7
            (k + 8, NOP),
            (0x300, NOP),
            (0x304, RFID),
            (k + 8, NOP),
            (k + 12, 0x0800_0000), // end tag
            (k + 16, NOP),
            (0x380, NOP),
            (0x384, RFID),
            (k + 16, NOP),
        ];
        // The glue's markers policy: record iff a tag is active.
        let (closed, steps) = run(&c, &t, &mut |tag| tag != 0);
        assert_eq!(closed.len(), 2);
        assert_eq!((closed[0].tag, closed[0].vector, closed[0].record, closed[0].insns), (7, 0x300, true, 2));
        assert_eq!((closed[1].tag, closed[1].vector, closed[1].record), (0, 0x380, false));
        assert!(steps[6].tag_ended);
        assert_eq!(steps.iter().filter(|s| s.tag_ended).count(), 1);
    }

    #[test]
    fn mode_all_ignores_markers() {
        let c = cfg(&["out=f", "mode=all"]);
        let t = [(0x1000, 0x0800_0048), (0x300, NOP), (0x304, RFID), (0x1004, 0x0800_0000)];
        let (closed, steps) = run(&c, &t, &mut |_| true);
        assert_eq!(closed[0].tag, 0);
        assert!(steps.iter().all(|s| !s.tag_ended));
    }

    #[test]
    fn a_tag_change_inside_a_window_keeps_the_windows_tag() {
        let c = cfg(&["out=f"]);
        let t = [(0x1000, 0x0800_0001), (0x300, NOP), (0x304, 0x0800_0002), (0x308, RFID)];
        let (closed, _) = run(&c, &t, &mut |tag| tag != 0);
        assert_eq!((closed[0].tag, closed[0].insns), (1, 3));
    }

    #[test]
    fn traces_the_first_windows_of_a_vector() {
        let c = cfg(&["out=f", "mode=all", "trace=0x380:1"]);
        let mut cpu = Cpu::new(&c);
        let t = [(0x1000, NOP), (0x300, NOP), (0x304, NOP), (0x380, NOP), (0x384, RFID), (0x308, RFID), (0x1000, NOP), (0x380, NOP), (0x384, RFID)];
        let mut traces = Vec::new();
        for (pc, w) in t {
            let s = cpu.exec(&ins(pc, w, &c), c.entry, &mut |_| true);
            if let Some(w) = s.closed {
                traces.push((w.vector, s.trace));
            }
        }
        assert_eq!(traces, vec![(0x380, vec![(0x380, NOP), (0x384, RFID)]), (0x300, vec![]), (0x380, vec![])]);
    }

    #[test]
    fn stack_depth_is_bounded() {
        let c = cfg(&["out=f", "mode=all"]);
        let mut cpu = Cpu::new(&c);
        let mut dropped = 0;
        for n in 0..(MAX_DEPTH as u64 + 5) {
            // Each vector entered from an unrelated address, never returning.
            let s = cpu.exec(&ins(0x9000 + 8 * n, NOP, &c), c.entry, &mut |_| true);
            assert!(!s.began);
            let s = cpu.exec(&ins(0x900, NOP, &c), c.entry, &mut |_| true);
            assert!(s.began);
            dropped += s.dropped as u32;
        }
        assert_eq!(cpu.depth(), MAX_DEPTH);
        assert_eq!(dropped, 5);
        let s = cpu.exec(&ins(0x904, RFID, &c), c.entry, &mut |_| true);
        assert_eq!(s.closed.unwrap().depth, MAX_DEPTH as u32);
    }

    #[test]
    fn stats_and_render() {
        let mut s = Stats::default();
        for (n, sc) in [(456, 1), (456, 1), (436, 1), (1038, 2)] {
            s.add(n, sc);
        }
        assert_eq!((s.windows, s.min, s.max, s.sum), (4, 436, 1038, 456 * 2 + 436 + 1038));
        let mut t = Stats::default();
        t.add(100, 0);
        t.merge(&s);
        assert_eq!((t.windows, t.min, t.max), (5, 100, 1038));
        assert_eq!(t.insns[&456], 2);
        assert_eq!(t.sc[&1], 3);
        assert_eq!(t.joint[&(2, 1038)], 1);
        let mut agg = Agg::new();
        agg.insert((0, 0x300), t);
        let c = cfg(&["out=f", "mode=all", "detail=on", "mark=0xc000000000001234"]);
        let w = Window { vector: 0x300, entry: 0x300, tag: 0, insns: 456, sc: 1, hints: 2, depth: 1, record: true };
        let txt = render(&c, "exit", 1, &agg, &[Detail { seq: 3, vcpu: 1, w, trace: vec![(0x300, 0x7db143a6)], ret: 0xc000000000412340 }], &[CpuCounters { began: 7, closed: 5, recorded: 5, dropped: 1, orphan_returns: 2 }], Some((3, 0)));
        let lines: Vec<&str> = txt.lines().collect();
        assert!(lines.contains(&"S 0 0x300 5 100 1038 2486"));
        assert!(lines.contains(&"H 0 0x300 456 2"));
        assert!(lines.contains(&"C 0 0x300 1 3"));
        assert!(lines.contains(&"J 0 0x300 1 456 2"));
        assert!(lines.contains(&"W 3 1 0 0x300 456 1 1 0x300 0xc000000000412340 2"));
        assert!(lines.contains(&"M 0xc000000000001234 3 0"));
        assert!(lines.contains(&"T 3 1 0x300 7db143a6"));
        assert!(lines.contains(&"V 0 7 5 5 1 1 2"));
        assert_eq!(*lines.last().unwrap(), "F exit 1");
        assert!(lines.iter().all(|l| l.starts_with('#') || l.split(' ').count() >= 2));
    }
}
