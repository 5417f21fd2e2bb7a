//! `/chosen/bootargs` (QEMU `-append`) parsed into a typed configuration. Unknown keys and bad
//! values are errors that name what is valid, never silently ignored.

use crate::trace::event::{parse_groups, Groups, GROUPS_HELP};
use core::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HashMode {
    LockFree,
    Locked,
    /// The first lock-free patch as reviewed in 2003 (opt-in: it has the race).
    Patch2003,
    /// The reviewer's CAS_PTE-twice proposal (opt-in).
    Cas2,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IrqMode {
    Deterministic,
    Random,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Crash {
    Null,
    Wild,
    Exec,
    Panic,
    User,
    NotPresent,
    Guard,
    Nested,
    Stack,
    ExcStack,
}

impl Crash {
    pub const NAMES: &'static [(&'static str, Crash)] = &[
        ("null", Crash::Null),
        ("wild", Crash::Wild),
        ("exec", Crash::Exec),
        ("panic", Crash::Panic),
        ("user", Crash::User),
        ("notpresent", Crash::NotPresent),
        ("guard", Crash::Guard),
        ("nested", Crash::Nested),
        ("stack", Crash::Stack),
        ("excstack", Crash::ExcStack),
    ];
}

/// How a benchmark's vCPU waits at a barrier: `Cede` gives its host thread up (H_CEDE, woken
/// by H_PROD); `Relax` spins with `or 1,1,1` as the kernel's other spin loops do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchWait {
    Cede,
    Relax,
}

/// When the trace stops recording (`trace.stop=`), so the rings keep that part of the run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TraceStop {
    /// Records until the dump.
    Never,
    /// Stops when the default run's interrupt scenario (irqtest) ends.
    Irqtest,
}

#[derive(Clone, Copy, Debug)]
pub struct Config<'a> {
    /// Run the in-kernel tests whose name contains this (empty string: all).
    pub test: Option<&'a str>,
    pub crash: Option<Crash>,
    pub hash_mode: HashMode,
    pub irq_iterations: u64,
    pub irq_mode: IrqMode,
    pub smp_rounds: u64,
    pub bench: Option<&'a str>,
    /// Measured time per configuration of the SMP benchmarks (`bench=smp|ceiling|faults`), in ms.
    pub bench_ms: u64,
    /// How the SMP benchmarks' waiting vCPUs wait (src/run/bench.rs, `PhaseBarrier`).
    pub bench_wait: BenchWait,
    pub watchdog_ms: u64,
    pub quiet: bool,
    /// Event groups to trace (`trace=`; none by default).
    pub trace: Groups,
    pub trace_stop: TraceStop,
    /// `inject=` / `inject.seed=`: the fault-injection plan (empty: none).
    pub inject: crate::inject::Plan,
}

impl Default for Config<'_> {
    fn default() -> Self {
        Config {
            test: None,
            crash: None,
            hash_mode: HashMode::LockFree,
            irq_iterations: 2000,
            irq_mode: IrqMode::Deterministic,
            smp_rounds: 20,
            bench: None,
            bench_ms: 300,
            bench_wait: BenchWait::Cede,
            watchdog_ms: 200,
            quiet: false,
            trace: Groups::empty(),
            trace_stop: TraceStop::Never,
            inject: crate::inject::Plan::default(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum BootargError<'a> {
    UnknownKey(&'a str),
    BadValue {
        key: &'a str,
        value: &'a str,
        expected: &'static str,
    },
    /// `trace=` named something that is not an event group.
    BadTraceGroup {
        value: &'a str,
        group: &'a str,
    },
}

pub const KEYS: &str = "test=FILTER, crash=null|wild|exec|panic|user|notpresent|guard|nested|stack|excstack, \
hash_page=lockfree|locked|patch2003|cas2, irqtest.iterations=N, irqtest.mode=deterministic|random, smp.rounds=N, \
bench=hash|smp|ceiling|contention|faults|vmalloc|all, bench.ms=N, bench.wait=cede|relax, watchdog.ms=N, quiet, trace=all|off|GROUP[,GROUP...], trace.stop=never|irqtest, \
inject=KIND:N|KIND:P%[,...], inject.seed=N";

/// The `bench=` kinds (src/run/bench.rs).
pub const BENCH_KINDS: [&str; 7] = ["hash", "smp", "ceiling", "contention", "faults", "vmalloc", "all"];
const BENCH_EXPECTED: &str = "hash|smp|ceiling|contention|faults|vmalloc|all";

impl fmt::Display for BootargError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootargError::UnknownKey(k) => write!(f, "unknown bootarg '{k}'; valid: {KEYS}"),
            BootargError::BadValue { key, value, expected } => {
                write!(f, "bad value '{value}' for bootarg '{key}': expected {expected}")
            }
            BootargError::BadTraceGroup { value, group } => {
                write!(
                    f,
                    "bad value '{value}' for bootarg 'trace': unknown event group '{group}'; expected {GROUPS_HELP}"
                )
            }
        }
    }
}

fn number<'a>(key: &'a str, v: &'a str, min: u64, max: u64) -> Result<u64, BootargError<'a>> {
    let bad = BootargError::BadValue { key, value: v, expected: "a whole number in range" };
    let n: u64 = v.parse().map_err(|_| BootargError::BadValue { key, value: v, expected: "a whole number" })?;
    if n < min || n > max {
        return Err(bad);
    }
    Ok(n)
}

pub fn parse(s: &str) -> Result<Config<'_>, BootargError<'_>> {
    let mut c = Config::default();
    for tok in s.split_ascii_whitespace() {
        let (k, v) = match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tok, None),
        };
        let val = |expected: &'static str| v.ok_or(BootargError::BadValue { key: k, value: "", expected });
        match k {
            "test" => c.test = Some(v.unwrap_or("")),
            "crash" => {
                let v = val("a crash kind")?;
                c.crash = Some(Crash::NAMES.iter().find(|(n, _)| *n == v).map(|(_, c)| *c).ok_or(
                    BootargError::BadValue {
                        key: k,
                        value: v,
                        expected: "null|wild|exec|panic|user|notpresent|guard|nested|stack|excstack",
                    },
                )?);
            }
            "hash_page" => {
                c.hash_mode = match val("lockfree|locked|patch2003|cas2")? {
                    "lockfree" => HashMode::LockFree,
                    "locked" => HashMode::Locked,
                    "patch2003" => HashMode::Patch2003,
                    "cas2" => HashMode::Cas2,
                    other => {
                        return Err(BootargError::BadValue {
                            key: k,
                            value: other,
                            expected: "lockfree|locked|patch2003|cas2",
                        })
                    }
                }
            }
            "irqtest.iterations" => c.irq_iterations = number(k, val("a number")?, 1, 10_000_000)?,
            "irqtest.mode" => {
                c.irq_mode = match val("deterministic|random")? {
                    "deterministic" => IrqMode::Deterministic,
                    "random" => IrqMode::Random,
                    other => {
                        return Err(BootargError::BadValue { key: k, value: other, expected: "deterministic|random" })
                    }
                }
            }
            "smp.rounds" => c.smp_rounds = number(k, val("a number")?, 1, 10_000_000)?,
            "watchdog.ms" => c.watchdog_ms = number(k, val("a number")?, 10, 60_000)?,
            "bench" => {
                let v = val(BENCH_EXPECTED)?;
                if !BENCH_KINDS.contains(&v) {
                    return Err(BootargError::BadValue { key: k, value: v, expected: BENCH_EXPECTED });
                }
                c.bench = Some(v)
            }
            "bench.ms" => c.bench_ms = number(k, val("a number")?, 10, 60_000)?,
            "bench.wait" => {
                c.bench_wait = match val("cede|relax")? {
                    "cede" => BenchWait::Cede,
                    "relax" => BenchWait::Relax,
                    other => return Err(BootargError::BadValue { key: k, value: other, expected: "cede|relax" }),
                }
            }
            "quiet" => c.quiet = true,
            "trace" => {
                let v = val(GROUPS_HELP)?;
                c.trace = parse_groups(v).map_err(|e| match e {
                    crate::trace::event::GroupError::Unknown(group) => BootargError::BadTraceGroup { value: v, group },
                    crate::trace::event::GroupError::Empty => {
                        BootargError::BadValue { key: k, value: v, expected: GROUPS_HELP }
                    }
                })?;
            }
            "trace.stop" => {
                c.trace_stop = match val("never|irqtest")? {
                    "never" => TraceStop::Never,
                    "irqtest" => TraceStop::Irqtest,
                    other => return Err(BootargError::BadValue { key: k, value: other, expected: "never|irqtest" }),
                }
            }
            "inject" => {
                let seed = c.inject.seed;
                let v = val(crate::inject::SPEC_SYNTAX)?;
                c.inject = crate::inject::Plan::parse(v).map_err(|e| BootargError::BadValue {
                    key: k,
                    value: e.what,
                    expected: e.expected,
                })?;
                c.inject.seed = seed;
            }
            "inject.seed" => c.inject.seed = number(k, val("a number")?, 0, u64::MAX)?,
            _ => return Err(BootargError::UnknownKey(k)),
        }
    }
    if c.hash_mode != HashMode::LockFree && c.inject.has_hcalls() {
        return Err(BootargError::BadValue {
            key: "inject",
            value: s
                .split_ascii_whitespace()
                .find(|t| t.starts_with("inject="))
                .unwrap_or("inject")
                .trim_start_matches("inject="),
            expected: "hypervisor kinds with hash_page=lockfree only (the injecting fault path is the lock-free one)",
        });
    }
    Ok(c)
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    #[test]
    fn empty_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.hash_mode, HashMode::LockFree);
        assert!(c.test.is_none() && c.crash.is_none());
    }

    #[test]
    fn all_keys() {
        let c = parse("test=mmu:: crash=null hash_page=locked irqtest.iterations=5 irqtest.mode=random smp.rounds=7 bench=hash bench.ms=40 bench.wait=relax quiet watchdog.ms=50").unwrap();
        assert_eq!(c.test, Some("mmu::"));
        assert_eq!(c.crash, Some(Crash::Null));
        assert_eq!(c.hash_mode, HashMode::Locked);
        assert_eq!(c.irq_iterations, 5);
        assert_eq!(c.irq_mode, IrqMode::Random);
        assert_eq!(c.smp_rounds, 7);
        assert_eq!(c.bench, Some("hash"));
        assert_eq!(c.bench_ms, 40);
        assert_eq!(c.bench_wait, BenchWait::Relax);
        assert_eq!(c.watchdog_ms, 50);
        assert!(c.quiet);
    }

    #[test]
    fn every_hash_page_design_parses() {
        for (v, m) in [
            ("lockfree", HashMode::LockFree),
            ("locked", HashMode::Locked),
            ("patch2003", HashMode::Patch2003),
            ("cas2", HashMode::Cas2),
        ] {
            assert_eq!(parse(&format!("hash_page={v}")).unwrap().hash_mode, m);
        }
    }

    #[test]
    fn bare_test_means_all() {
        assert_eq!(parse("test").unwrap().test, Some(""));
    }

    #[test]
    fn unknown_key_names_valid_ones() {
        let e = parse("frobnicate=1").unwrap_err();
        assert_eq!(e, BootargError::UnknownKey("frobnicate"));
        let msg = format!("{e}");
        assert!(msg.contains("hash_page=lockfree|locked|patch2003|cas2"), "{msg}");
    }

    #[test]
    fn every_crash_kind_is_listed_and_parses() {
        let listed = KEYS.split(", ").find(|k| k.starts_with("crash=")).unwrap().trim_start_matches("crash=");
        let names: Vec<&str> = Crash::NAMES.iter().map(|(n, _)| *n).collect();
        assert_eq!(listed.split('|').collect::<Vec<_>>(), names);
        for (n, c) in Crash::NAMES {
            assert_eq!(parse(&format!("crash={n}")).unwrap().crash, Some(*c));
        }
    }

    #[test]
    fn inject_plans() {
        use crate::inject::{Kind, Trigger};
        let c = parse("inject=enter_busy:3%,frame:10 inject.seed=77").unwrap();
        assert_eq!(c.inject.trigger(Kind::EnterBusy), Some(Trigger::Ppm(30_000)));
        assert_eq!(c.inject.trigger(Kind::Frame), Some(Trigger::Every(10)));
        assert_eq!(c.inject.seed, 77);
        // The seed may come first.
        assert_eq!(parse("inject.seed=5 inject=heap:2").unwrap().inject.seed, 5);
        assert!(parse("").unwrap().inject.is_empty());
        let e = parse("inject=enter_bsy:3").unwrap_err();
        assert_eq!(
            e,
            BootargError::BadValue { key: "inject", value: "enter_bsy:3", expected: crate::inject::KIND_LIST }
        );
        assert!(format!("{e}").contains("enter_full|"), "{e}");
        assert!(matches!(parse("inject"), Err(BootargError::BadValue { .. })));
        assert!(matches!(parse("inject=enter_busy:1"), Err(BootargError::BadValue { key: "inject", .. })));
        assert!(matches!(parse("inject.seed=x"), Err(BootargError::BadValue { .. })));
        // The injecting fault path is the lock-free one; allocation kinds work with any design.
        for d in ["locked", "patch2003", "cas2"] {
            let args = format!("hash_page={d} inject=enter_full:5");
            let e = parse(&args).unwrap_err();
            assert!(format!("{e}").contains("lockfree only"), "{e}");
            assert!(parse(&format!("hash_page={d} inject=frame:5")).is_ok());
        }
        assert!(KEYS.contains("inject=KIND:N|KIND:P%"));
    }

    #[test]
    fn bad_values() {
        assert!(matches!(parse("hash_page=maybe"), Err(BootargError::BadValue { .. })));
        assert!(matches!(parse("crash=banana"), Err(BootargError::BadValue { .. })));
        assert!(matches!(parse("irqtest.iterations=0"), Err(BootargError::BadValue { .. })));
        assert!(matches!(parse("irqtest.iterations=x"), Err(BootargError::BadValue { .. })));
        assert!(matches!(parse("crash"), Err(BootargError::BadValue { .. })));
        assert!(matches!(parse("bench=fast"), Err(BootargError::BadValue { .. })));
        assert!(matches!(parse("bench.ms=5"), Err(BootargError::BadValue { .. })));
        assert!(matches!(parse("bench.wait=yield"), Err(BootargError::BadValue { .. })));
    }

    #[test]
    fn every_bench_kind_is_listed_and_parses() {
        let listed = KEYS.split(", ").find(|k| k.starts_with("bench=")).unwrap().trim_start_matches("bench=");
        assert_eq!(listed.split('|').collect::<Vec<_>>(), BENCH_KINDS);
        for k in BENCH_KINDS {
            assert_eq!(parse(&format!("bench={k}")).unwrap().bench, Some(k));
        }
    }

    #[test]
    fn trace_groups() {
        assert_eq!(parse("").unwrap().trace, Groups::empty());
        assert_eq!(parse("trace=all").unwrap().trace, Groups::all());
        assert_eq!(parse("trace=off").unwrap().trace, Groups::empty());
        assert_eq!(parse("trace=exc,lock,hash").unwrap().trace, Groups::EXC | Groups::LOCK | Groups::HASH);
        assert_eq!(parse("trace=all trace.stop=irqtest").unwrap().trace_stop, TraceStop::Irqtest);
        assert_eq!(parse("").unwrap().trace_stop, TraceStop::Never);
    }

    #[test]
    fn bad_trace_values_say_what_is_valid() {
        let e = parse("trace=exc,lokc").unwrap_err();
        assert_eq!(e, BootargError::BadTraceGroup { value: "exc,lokc", group: "lokc" });
        let msg = format!("{e}");
        assert_eq!(msg, "bad value 'exc,lokc' for bootarg 'trace': unknown event group 'lokc'; expected all, off, or a comma-separated list of exc,hash,hcall,lock,mm,timer,watchdog");
        for bad in ["trace", "trace=", "trace=exc,", "trace=,exc"] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, BootargError::BadValue { key: "trace", .. }), "{bad}: {e:?}");
            assert!(format!("{e}").contains("exc,hash,hcall,lock,mm,timer,watchdog"), "{bad}: {e}");
        }
        assert!(matches!(parse("trace.stop=later"), Err(BootargError::BadValue { key: "trace.stop", .. })));
        assert!(KEYS.contains("trace=all|off|GROUP"));
    }
}

/// The run's configuration, parsed once by kmain and read by whoever needs it (the test
/// harness's `quiet`, the SMP stress's rounds): kept here, below the runs and tests that read
/// it, rather than in kmain above them.
#[cfg(target_os = "none")]
mod global {
    use super::Config;
    static CONFIG: spin::Once<Config<'static>> = spin::Once::new();

    pub fn set_config(c: Config<'static>) -> &'static Config<'static> {
        CONFIG.call_once(|| c)
    }

    pub fn config() -> &'static Config<'static> {
        CONFIG.get().expect("bootargs are parsed first thing in kmain")
    }

    /// `quiet`: passing tests are not listed (failures and summaries still are).
    pub fn quiet() -> bool {
        CONFIG.get().map(|c| c.quiet).unwrap_or(false)
    }
}
#[cfg(target_os = "none")]
pub use global::{config, quiet, set_config};
