//! smp:: tests: the SMP race stress and its own checks (a planted stale HPTE found, a run
//! without contention rejected), lost reservations, CPUs online (src/run/stress.rs).
use crate::arch::ppc64::boot;
use crate::hash::cell::PteCell;
use crate::ktest::TestResult;
use crate::mm::hpte::hash_4k;
use crate::mm::pte::PteFlags;
use crate::mm::slbe::kernel_vsid;
use crate::mm::vmalloc;
use crate::println;
use crate::run::stress::*;
use crate::smp;
use alloc::collections::BTreeSet;
use core::sync::atomic::Ordering::*;

crate::ktest!("smp", all_cpus_online);
fn all_cpus_online() -> TestResult {
    crate::kassert_eq!(smp::ncpus(), boot::info().ncpus);
    Ok(())
}

crate::ktest!("smp", race_stress_invariants_hold);
fn race_stress_invariants_hold() -> TestResult {
    let rep = stress_checked(crate::bootargs::config().smp_rounds)?;
    crate::kassert!(rep.checks > 0);
    Ok(())
}

crate::ktest!("smp", stress_without_contention_is_rejected);
fn stress_without_contention_is_rejected() -> TestResult {
    // Workers that only keep the barriers: no BUSY re-execution can happen. Where vCPUs run in
    // parallel the stress must call that a failure; elsewhere it must pass and say why.
    WORKERS_IDLE.store(true, Relaxed);
    // Only CPU 0 touches pages here, between its vmalloc/vfree and protection changes: on a
    // loaded host with many vCPUs (each HPTE removal a TLB flush QEMU runs with every vCPU
    // stopped) two rounds may bring no fault at all, which proves nothing either way; then
    // longer runs.
    let mut r = stress_checked(2);
    for rounds in [8, 32] {
        if !matches!(&r, Err(e) if e.contains("no faults at all")) {
            break;
        }
        println!("smp: no faults at all in the last run; again with {rounds} rounds");
        r = stress_checked(rounds);
    }
    WORKERS_IDLE.store(false, Relaxed);
    match r {
        Err(e) if e.contains("no BUSY re-execution") => {
            println!("smp: rejected, as it must be: {}", e);
            Ok(())
        }
        Err(e) => Err(alloc::format!("failed for another reason: {e}")),
        Ok(rep) => {
            crate::kassert_eq!(rep.busy_retries, 0);
            crate::kassert!(
                !rep.parallel,
                "a stress without contention passed with {} vCPUs running in parallel",
                smp::ncpus()
            );
            println!("smp: (not parallel here, so contention is not required: the run above passes without it)");
            Ok(())
        }
    }
}

crate::ktest!("smp", stale_hpte_check_covers_every_page_mapped);
fn stale_hpte_check_covers_every_page_mapped() -> TestResult {
    // A stale HPTE on a page of an area the stress created, below every area the workers use:
    // the check after each round and the final one must both report it, at that address.
    INJECT_STALE.store(true, Relaxed);
    let r = run(2, 20_000);
    INJECT_STALE.store(false, Relaxed);
    let rep = r?;
    println!(
        "smp: stale HPTE planted at {:#x}: {} findings ({} in the final scan) over {} pages, first at {:#x}",
        rep.planted_at, rep.violations, rep.end_violations, rep.pages_scanned, rep.first_violation_at
    );
    crate::kassert!(
        rep.violations > rep.rounds,
        "the planted stale HPTE was found {} times in {} rounds + the final scan",
        rep.violations,
        rep.rounds
    );
    crate::kassert!(rep.end_violations >= 1, "the final scan did not find the planted stale HPTE");
    crate::kassert!(
        rep.planted_at != 0 && rep.first_violation_at == rep.planted_at,
        "first finding at {:#x}, planted at {:#x}",
        rep.first_violation_at,
        rep.planted_at
    );
    crate::kassert!(vmalloc::find_hpte(rep.planted_at).is_none(), "the planted HPTE was not removed afterwards");
    Ok(())
}

crate::ktest!("smp", lost_reservations_are_counted);
fn lost_reservations_are_counted() -> TestResult {
    // Every failed stdcx. in hash_page's take must be counted and retried: never lost, never a
    // wrong PTE. First deterministically on this CPU (an interrupt between ldarx and stdcx.),
    // in every mode; then, where vCPUs really run at once, against another CPU updating the PTE.
    let n = 64;
    let (takes, lost, upgrades) = interrupted_takes(n)?;
    println!(
        "smp: {} takes whose stdcx. took a protection fault: {} lost reservations counted, {} H_PROTECT upgrades",
        takes, lost, upgrades
    );
    crate::kassert!(lost >= takes, "{} lost reservations in {} interrupted takes", lost, takes);
    crate::kassert!(
        upgrades >= takes,
        "only {} H_PROTECT upgrades for {} takes: the stdcx. did not fault each time",
        upgrades,
        takes
    );
    if smp::ncpus() < 2 || !parallel_vcpus() {
        println!("smp: vCPUs do not run at the same time here (one CPU, --accel single, or a busy host): the cross-CPU race is not attempted");
        return Ok(());
    }
    // The windows only overlap while both vCPUs really run at once on the host: retry a few
    // times before calling it a failure (a loaded host time-slices the vCPU threads).
    let (mut taken, mut fails, mut toggles) = (0, 0, 0);
    for _ in 0..10 {
        let (t, f, g) = take_race(50_000);
        taken += t;
        fails += f;
        toggles += g;
        if fails > 0 {
            break;
        }
    }
    println!(
        "smp: {} takes, {} lost reservations (stcx. failures) against {} concurrent PTE updates",
        taken, fails, toggles
    );
    crate::kassert!(taken > 0);
    crate::kassert!(fails > 0, "no stcx. failure in {} takes against a CPU changing the PTE", taken);
    let last = TOGGLE_SLOT.load();
    crate::kassert!(!last.is_busy() && last.pfn() == 0x1234, "PTE after the race: {}", last);
    Ok(())
}

crate::ktest!("smp", hunt_resets_leftover_hashpte_ptes);
fn hunt_resets_leftover_hashpte_ptes() -> TestResult {
    // The leftover of patch2003's late slot record whose HPTE another CPU evicted: a freed
    // page's PTE with HASHPTE and a slot but not present. vmalloc will not map over it; the
    // hunt resets it — and nothing else: not a page that still has an HPTE.
    let e = |x: vmalloc::VmError| alloc::format!("{x}");
    let a = vmalloc::vmalloc(2 * 4096).map_err(e)?;
    vmalloc::vfree(a).map_err(e)?;
    let leftover = PteFlags::HASHPTE.bits();
    vmalloc::set_pte_raw(a, u64::MAX, leftover).map_err(e)?;
    vmalloc::set_pte_raw(a + 4096, u64::MAX, leftover).map_err(e)?;
    // The second one still has an HPTE (a stale one, as the checks would report it).
    use crate::hash::backend::HashBackend;
    let vsid = kernel_vsid(a + 4096);
    let g = boot::info().hpt().group_base(hash_4k(vsid, a + 4096), false);
    let planted = crate::hash::hpt::Hpt
        .insert(
            g,
            crate::mm::hpte::avpn_for(vsid, a + 4096) | crate::mm::hpte::HpteV::VALID.bits(),
            (0x2000 << 12) | 0x190,
        )
        .map_err(|x| alloc::format!("insert: {x:?}"))?;
    let history: BTreeSet<u64> = [a, a + 4096].into_iter().collect();
    let n = reset_leftovers(&history);
    let (p0, p1) = (vmalloc::pte_of(a).map(|p| p.raw()), vmalloc::pte_of(a + 4096).map(|p| p.raw()));
    let _ = crate::hash::hpt::Hpt.remove(planted, crate::mm::hpte::avpn_for(vsid, a + 4096));
    let _ = vmalloc::set_pte_raw(a + 4096, u64::MAX, 0);
    crate::kassert_eq!(n, 1);
    crate::kassert_eq!(p0, Some(0));
    crate::kassert_eq!(p1, Some(leftover));
    Ok(())
}
