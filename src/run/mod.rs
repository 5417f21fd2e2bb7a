//! The kernel's own runs: what `cargo run` does besides the tests. The 2003 scenario
//! (`irqtest`: a decrementer handler faults on vmalloc memory while vmalloc holds
//! page_table_lock), the SMP race stress with its H_READ invariant checks (`stress`), the
//! benchmarks behind `bench=` (`bench`) and the deliberate failures behind `crash=` (`crash`).
//! They sit above the kernel services they exercise and below the test harness, which runs
//! them too (ktest/t_irqtest.rs, t_smp.rs).
pub mod bench;
pub mod crash;
pub mod irqtest;
pub mod stress;
pub mod user;
