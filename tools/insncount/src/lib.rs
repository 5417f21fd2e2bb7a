//! insncount: a QEMU (7.2, plugin API version 1) TCG plugin that counts guest instructions
//! exactly, per vCPU, from the first instruction of an exception vector through the
//! rfid/hrfid/rfscv that ends it. See README.md for arguments and the output format.
//!
//! Every instruction gets an exec callback registered at translation. The callback runs on
//! the thread of the vCPU that executes it (MTTCG: several at once), before the instruction;
//! an instruction that faults has already been counted where it was (outside the new window),
//! and one that is re-executed afterwards is counted again, like a single-stepper sees it.

pub mod logic;

use logic::{Agg, Config, Cpu, CpuCounters, Detail, Insn, Mode, Op, Span, TimeAgg};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

// ------------------------------------------------------------------------------- QEMU ABI
// Declared by hand from include/qemu/qemu-plugin.h (QEMU_PLUGIN_VERSION 1). The functions
// are exported by the qemu-system binary and bound when QEMU dlopen()s this library.

#[repr(C)]
struct QemuPluginTb {
    _opaque: [u8; 0],
}
#[repr(C)]
struct QemuPluginInsn {
    _opaque: [u8; 0],
}

#[repr(C)]
struct QemuInfoVersion {
    min: c_int,
    cur: c_int,
}
#[repr(C)]
struct QemuInfoSystem {
    smp_vcpus: c_int,
    max_vcpus: c_int,
}
#[repr(C)]
pub struct QemuInfo {
    target_name: *const c_char,
    version: QemuInfoVersion,
    system_emulation: bool,
    // A union with one member in API version 1.
    system: QemuInfoSystem,
}

type PluginId = u64;
type TbTransCb = extern "C" fn(PluginId, *mut QemuPluginTb);
type VcpuUdataCb = extern "C" fn(c_uint, *mut c_void);
type UdataCb = extern "C" fn(PluginId, *mut c_void);

/// enum qemu_plugin_cb_flags: QEMU_PLUGIN_CB_NO_REGS. The callback reads no guest register.
const CB_NO_REGS: c_int = 0;

extern "C" {
    fn qemu_plugin_register_vcpu_tb_trans_cb(id: PluginId, cb: TbTransCb);
    fn qemu_plugin_register_vcpu_insn_exec_cb(insn: *mut QemuPluginInsn, cb: VcpuUdataCb, flags: c_int, udata: *mut c_void);
    fn qemu_plugin_register_atexit_cb(id: PluginId, cb: UdataCb, udata: *mut c_void);
    fn qemu_plugin_tb_n_insns(tb: *const QemuPluginTb) -> usize;
    fn qemu_plugin_tb_get_insn(tb: *const QemuPluginTb, idx: usize) -> *mut QemuPluginInsn;
    fn qemu_plugin_insn_data(insn: *const QemuPluginInsn) -> *const c_void;
    fn qemu_plugin_insn_size(insn: *const QemuPluginInsn) -> usize;
    fn qemu_plugin_insn_vaddr(insn: *const QemuPluginInsn) -> u64;
}

#[no_mangle]
#[used]
#[allow(non_upper_case_globals)]
pub static qemu_plugin_version: c_int = 1;

// ------------------------------------------------------------------------------- state

struct Slot {
    /// Touched only from exec callbacks for this vCPU index, which QEMU runs on that vCPU's
    /// own thread (MTTCG) or on the single TCG thread, never on two threads at once. With the
    /// Cpu, the index in `agg`'s details of the last window, whose return address comes with
    /// the next instruction.
    cpu: UnsafeCell<(Cpu, Option<usize>)>,
    /// Closed windows of this vCPU. The lock is uncontended except while a flush reads it.
    agg: Mutex<(Agg, Vec<Detail>)>,
    began: AtomicU64,
    closed: AtomicU64,
    recorded: AtomicU64,
    dropped: AtomicU64,
    orphan_returns: AtomicU64,
    /// `mode=time`: the open span (same single-thread rule as `cpu`) and the closed ones.
    span: UnsafeCell<Span>,
    times: Mutex<TimeAgg>,
}

// SAFETY: the two UnsafeCells, `cpu` and `span`, are only dereferenced inside the exec
// callbacks (`on_exec`, `on_marker`) for the slot's own vCPU index, which QEMU runs on one
// thread at a time (see the `cpu` field comment); every other field is a Mutex or an atomic.
unsafe impl Sync for Slot {}

impl Slot {
    fn new(cfg: &Config) -> Slot {
        Slot {
            cpu: UnsafeCell::new((Cpu::new(cfg), None)),
            agg: Mutex::new((Agg::new(), Vec::new())),
            began: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            orphan_returns: AtomicU64::new(0),
            span: UnsafeCell::new(None),
            times: Mutex::new(TimeAgg::new()),
        }
    }
}

struct State {
    cfg: Config,
    slots: Box<[Slot]>,
    /// Decoded instructions by (address, word). Entries are never removed, so the boxed
    /// values, whose addresses the exec callbacks receive as userdata, live as long as QEMU.
    insns: Mutex<HashMap<(u64, u32), Box<Insn>>>,
    /// `start=ADDR` seen (or not requested).
    armed: AtomicBool,
    /// `after=N`: windows still to skip.
    skip: AtomicU64,
    seq: AtomicU64,
    /// vCPU indexes beyond the slots (should not happen: max_vcpus comes from QEMU).
    stray: AtomicU64,
    flush: Mutex<u64>,
    /// (detail sequence number, vCPU) when `mark=ADDR` first executed.
    mark: OnceLock<(u64, u32)>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// To QEMU's stderr: qemu_plugin_outs() would go to QEMU's log, which is off unless
/// `-d plugin` is given, and an argument error must be seen.
fn outs(msg: &str) {
    eprintln!("insncount: {msg}");
}

impl State {
    fn should_record(&self, tag: u32) -> bool {
        let wanted = match self.cfg.mode {
            Mode::Markers => tag != 0,
            Mode::All => true,
            Mode::Time => false,
        };
        if !wanted || !self.armed.load(Relaxed) {
            return false;
        }
        // Consume one of the `after` skips, if any are left.
        self.skip.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_err()
    }

    fn write(&self, reason: &str) {
        let mut n = self.flush.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        if self.cfg.mode == Mode::Time {
            let mut all = TimeAgg::new();
            for s in self.slots.iter() {
                all.extend(s.times.lock().unwrap_or_else(|e| e.into_inner()).iter());
            }
            self.put(&logic::render_time(reason, *n, &all));
            return;
        }
        let mut agg = Agg::new();
        let mut details = Vec::new();
        let mut cpus = Vec::with_capacity(self.slots.len());
        for s in self.slots.iter() {
            {
                let g = s.agg.lock().unwrap_or_else(|e| e.into_inner());
                logic::merge_agg(&mut agg, &g.0);
                details.extend_from_slice(&g.1);
            }
            cpus.push(CpuCounters {
                began: s.began.load(Relaxed),
                closed: s.closed.load(Relaxed),
                recorded: s.recorded.load(Relaxed),
                dropped: s.dropped.load(Relaxed),
                orphan_returns: s.orphan_returns.load(Relaxed),
            });
        }
        details.sort_unstable_by_key(|d| d.seq);
        let text = logic::render(&self.cfg, reason, *n, &agg, &details, &cpus, self.mark.get().copied());
        self.put(&text);
        let stray = self.stray.load(Relaxed);
        if stray > 0 {
            outs(&format!("{stray} instructions on vCPU indexes beyond {} were ignored", self.slots.len()));
        }
    }
}

impl State {
    /// Written aside and renamed, so a reader never sees a half-written file.
    fn put(&self, text: &str) {
        let tmp = format!("{}.tmp{}", self.cfg.out, std::process::id());
        let r = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &self.cfg.out));
        if let Err(e) = r {
            outs(&format!("cannot write {}: {e}", self.cfg.out));
        }
    }
}

/// Host monotonic nanoseconds since the plugin was loaded.
fn now_ns() -> u64 {
    static BASE: OnceLock<std::time::Instant> = OnceLock::new();
    BASE.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

/// `mode=time`: the exec callback of a marker instruction (the only ones that get one).
extern "C" fn on_marker(vcpu: c_uint, udata: *mut c_void) {
    let now = now_ns();
    let Some(st) = STATE.get() else { return };
    let Some(slot) = st.slots.get(vcpu as usize) else {
        st.stray.fetch_add(1, Relaxed);
        return;
    };
    // SAFETY: udata is the address of a Box<Insn> owned by `st.insns`, never freed.
    let Op::Marker(tag) = (unsafe { &*(udata as *const Insn) }).op else { return };
    // SAFETY: only this vCPU's thread runs its callbacks (Slot::cpu), so this is the only reference.
    let open = unsafe { &mut *slot.span.get() };
    if let Some((t, ns)) = logic::time_marker(open, tag, now) {
        let mut g = slot.times.lock().unwrap_or_else(|e| e.into_inner());
        let e = g.entry((t, vcpu)).or_insert((0, 0));
        e.0 += 1;
        e.1 += ns;
    }
}

// ------------------------------------------------------------------------------- callbacks

extern "C" fn on_exec(vcpu: c_uint, udata: *mut c_void) {
    let Some(st) = STATE.get() else { return };
    // SAFETY: udata is the address of a Box<Insn> owned by `st.insns`, never freed (see there).
    let insn = unsafe { &*(udata as *const Insn) };
    let Some(slot) = st.slots.get(vcpu as usize) else {
        st.stray.fetch_add(1, Relaxed);
        return;
    };
    if insn.is_start {
        st.armed.store(true, Relaxed);
    }
    if insn.is_mark && st.mark.get().is_none() {
        let _ = st.mark.set((st.seq.load(Relaxed), vcpu));
    }
    // SAFETY: this callback is the only user of the slot's Cpu and QEMU runs it for a given
    // vCPU index on one thread at a time (Slot::cpu), so this is the only reference.
    let (cpu, last_detail) = unsafe { &mut *slot.cpu.get() };
    let mut step = cpu.exec(insn, st.cfg.entry, &mut |tag| st.should_record(tag));
    if let (Some(ret), Some(idx)) = (step.returned_to, last_detail.take()) {
        let mut g = slot.agg.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = g.1.get_mut(idx) {
            d.ret = ret;
        }
    }
    if step.began {
        slot.began.fetch_add(1, Relaxed);
    }
    if step.dropped {
        slot.dropped.fetch_add(1, Relaxed);
    }
    if step.orphan_return {
        slot.orphan_returns.fetch_add(1, Relaxed);
    }
    if let Some(w) = step.closed.take() {
        slot.closed.fetch_add(1, Relaxed);
        if w.record {
            slot.recorded.fetch_add(1, Relaxed);
            let mut g = slot.agg.lock().unwrap_or_else(|e| e.into_inner());
            g.0.entry((w.tag, w.vector)).or_default().add(w.insns, w.sc);
            if st.cfg.detail || !step.trace.is_empty() {
                let seq = st.seq.fetch_add(1, Relaxed);
                g.1.push(Detail { seq, vcpu, w, trace: std::mem::take(&mut step.trace), ret: 0 });
                *last_detail = Some(g.1.len() - 1);
            }
        }
    }
    if step.tag_ended && st.cfg.flush_at_tag_end {
        st.write("tag");
    }
}

extern "C" fn on_tb_trans(_id: PluginId, tb: *mut QemuPluginTb) {
    let Some(st) = STATE.get() else { return };
    // SAFETY: `tb` is valid for the duration of this translation callback.
    let n = unsafe { qemu_plugin_tb_n_insns(tb) };
    let mut map = st.insns.lock().unwrap_or_else(|e| e.into_inner());
    for i in 0..n {
        // SAFETY: i < n; the insn handle and its data stay valid during this callback.
        let (insn, pc, bytes) = unsafe {
            let insn = qemu_plugin_tb_get_insn(tb, i);
            let size = qemu_plugin_insn_size(insn);
            let data = qemu_plugin_insn_data(insn) as *const u8;
            let bytes = if data.is_null() { &[][..] } else { std::slice::from_raw_parts(data, size) };
            (insn, qemu_plugin_insn_vaddr(insn), bytes)
        };
        let word = logic::word(bytes, st.cfg.endian).unwrap_or(0);
        let boxed = map.entry((pc, word)).or_insert_with(|| Box::new(Insn::decode(pc, bytes, &st.cfg)));
        let ptr = &**boxed as *const Insn as *mut c_void;
        if st.cfg.mode == Mode::Time {
            if let Op::Marker(_) = boxed.op {
                // SAFETY: as below.
                unsafe { qemu_plugin_register_vcpu_insn_exec_cb(insn, on_marker, CB_NO_REGS, ptr) };
            }
            continue;
        }
        // SAFETY: insn is this TB's instruction handle; ptr outlives every execution (State::insns).
        unsafe { qemu_plugin_register_vcpu_insn_exec_cb(insn, on_exec, CB_NO_REGS, ptr) };
    }
}

extern "C" fn on_exit(_id: PluginId, _udata: *mut c_void) {
    if let Some(st) = STATE.get() {
        st.write("exit");
        if st.cfg.mode == Mode::Time {
            let spans: u64 = st.slots.iter().map(|s| s.times.lock().unwrap_or_else(|e| e.into_inner()).values().map(|v| v.0).sum::<u64>()).sum();
            outs(&format!("{spans} timed spans in {}", st.cfg.out));
            return;
        }
        let rec: u64 = st.slots.iter().map(|s| s.recorded.load(Relaxed)).sum();
        outs(&format!("{rec} windows recorded in {}", st.cfg.out));
    }
}

/// Entry point called by QEMU when it loads the plugin.
///
/// # Safety
/// QEMU passes a valid `info` and `argc` NUL-terminated strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(id: PluginId, info: *const QemuInfo, argc: c_int, argv: *const *const c_char) -> c_int {
    let mut args = Vec::new();
    for i in 0..argc.max(0) as usize {
        // SAFETY: QEMU guarantees argc valid C strings (see the function's contract).
        let a = unsafe { CStr::from_ptr(*argv.add(i)) };
        args.push(a.to_string_lossy().into_owned());
    }
    let cfg = match logic::parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            outs(&e);
            return -1;
        }
    };
    // SAFETY: QEMU passes a valid qemu_info_t (see the function's contract).
    let info = unsafe { &*info };
    if !info.system_emulation {
        outs("needs full-system emulation (qemu-system-*)");
        return -1;
    }
    let nslots = info.system.max_vcpus.max(info.system.smp_vcpus).max(1) as usize;
    let state = State {
        armed: AtomicBool::new(cfg.start.is_none()),
        skip: AtomicU64::new(cfg.after),
        slots: (0..nslots).map(|_| Slot::new(&cfg)).collect(),
        insns: Mutex::new(HashMap::new()),
        seq: AtomicU64::new(0),
        stray: AtomicU64::new(0),
        flush: Mutex::new(0),
        mark: OnceLock::new(),
        cfg,
    };
    if STATE.set(state).is_err() {
        outs("loaded twice in one QEMU; only the first instance counts");
        return -1;
    }
    // SAFETY: registering callbacks with the id QEMU gave us, from inside install as the API expects.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
        qemu_plugin_register_atexit_cb(id, on_exit, std::ptr::null_mut());
    }
    0
}
