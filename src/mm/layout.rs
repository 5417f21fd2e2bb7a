//! Pure address arithmetic shared by the page tables and the area allocator (host-tested):
//! where an address sits in the three-level tree, and where a new area fits.

use super::slbe::{region_of, Region};

pub const PAGE_SIZE: u64 = 4096;

/// The linear mapping: VA = KERNEL_BASE + PA (the one definition; `boot` and `mm` re-export it).
pub const KERNEL_BASE: u64 = 0xc000_0000_0000_0000;
/// The region bits of an effective address (the top four).
const REGION_MASK: u64 = 0xf000_0000_0000_0000;

/// The physical address behind a linear-mapping address. A real-mode address (the region bits
/// already clear, as on the boot stack before translation is on) is returned as it is.
pub const fn linear_pa(va: u64) -> u64 {
    va & !REGION_MASK
}

/// The linear-mapping address of physical address `pa`.
pub const fn linear_va(pa: u64) -> u64 {
    KERNEL_BASE | pa
}
/// Each region's tree covers 2^39 bytes (512 GiB) of 4K pages.
pub const REGION_SPAN: u64 = 1 << 39;

/// (root index, PGD index, PMD index, PTE index) for `ea`: root 0 is the vmalloc region, 1 the
/// I/O region. None for addresses in no tree (linear, user, beyond the span).
pub const fn table_indices(ea: u64) -> Option<(usize, usize, usize, usize)> {
    let r = match region_of(ea) {
        Some(Region::Vmalloc) => 0,
        Some(Region::Io) => 1,
        _ => return None,
    };
    let off = ea & !REGION_MASK;
    if off >= REGION_SPAN {
        return None;
    }
    Some((r, ((off >> 30) & 511) as usize, ((off >> 21) & 511) as usize, ((off >> 12) & 511) as usize))
}

/// First address in [lo, hi) where `pages` pages plus one unmapped guard page fit between the
/// existing areas, given as (start, end) pairs sorted by start, each followed by its own guard
/// page.
pub fn find_gap(areas: impl Iterator<Item = (u64, u64)>, lo: u64, hi: u64, pages: u64) -> Option<u64> {
    let need = (pages + 1) * PAGE_SIZE;
    let mut cur = lo;
    for (start, end) in areas {
        if end + PAGE_SIZE <= cur {
            continue;
        }
        if start >= cur + need {
            break;
        }
        cur = cur.max(end + PAGE_SIZE);
    }
    if cur.checked_add(need)? <= hi {
        Some(cur)
    } else {
        None
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    const V: u64 = 0xd000_0000_0000_0000;

    #[test]
    fn linear_conversions_are_inverse() {
        for pa in [0u64, 0x400000, 0x3fff_f000, (1 << 40) - 8] {
            assert_eq!(linear_pa(linear_va(pa)), pa);
            assert_eq!(linear_va(pa) >> 60, 0xc);
        }
        // A real-mode address is already physical.
        assert_eq!(linear_pa(0x400000), 0x400000);
    }

    #[test]
    fn indices_walk_the_three_levels() {
        assert_eq!(table_indices(V), Some((0, 0, 0, 0)));
        assert_eq!(table_indices(V + 0x1000), Some((0, 0, 0, 1)));
        assert_eq!(table_indices(V + (1 << 21)), Some((0, 0, 1, 0)));
        assert_eq!(table_indices(V + (1 << 30) + (3 << 21) + (5 << 12) + 0xfff), Some((0, 1, 3, 5)));
        assert_eq!(table_indices(0xe000_0000_0000_0000 + (511 << 30)), Some((1, 511, 0, 0)));
        assert_eq!(table_indices(V + REGION_SPAN - 1), Some((0, 511, 511, 511)));
    }

    #[test]
    fn indices_reject_other_addresses() {
        assert_eq!(table_indices(V + REGION_SPAN), None);
        assert_eq!(table_indices(0xc000_0000_0000_0000), None);
        assert_eq!(table_indices(0), None);
        assert_eq!(table_indices(0x5000_0000_dead_0000), None);
    }

    #[test]
    fn indices_are_a_bijection_on_pages() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000u64 {
            let ea = V + i * 0x1000 * 97;
            assert!(seen.insert(table_indices(ea).unwrap()));
        }
    }

    #[test]
    fn gap_in_an_empty_region_is_its_start() {
        assert_eq!(find_gap([].into_iter(), V, V + (1 << 30), 4), Some(V));
    }

    #[test]
    fn gap_keeps_guard_pages_on_both_sides() {
        // area [V, V+2 pages), its guard page V+2; next area must start at V+3 pages.
        let a = [(V, V + 2 * PAGE_SIZE)];
        assert_eq!(find_gap(a.into_iter(), V, V + (1 << 30), 1), Some(V + 3 * PAGE_SIZE));
    }

    #[test]
    fn gap_fills_holes_first_fit() {
        // hole of exactly 3 pages between two areas: [V+3p, V+6p) free, guard of the second
        // area's predecessor included: a 2-page area (2 + guard) fits, a 3-page one does not.
        let a = [(V, V + 2 * PAGE_SIZE), (V + 6 * PAGE_SIZE, V + 8 * PAGE_SIZE)];
        assert_eq!(find_gap(a.into_iter(), V, V + (1 << 30), 2), Some(V + 3 * PAGE_SIZE));
        assert_eq!(find_gap(a.into_iter(), V, V + (1 << 30), 3), Some(V + 9 * PAGE_SIZE));
    }

    #[test]
    fn gap_respects_the_region_end() {
        let hi = V + 10 * PAGE_SIZE;
        assert_eq!(find_gap([].into_iter(), V, hi, 9), Some(V));
        assert_eq!(find_gap([].into_iter(), V, hi, 10), None);
        // area [V, V+5p) + guard: 4 pages remain (6..10): 3 pages + guard fit, 4 do not.
        let a = [(V, V + 5 * PAGE_SIZE)];
        assert_eq!(find_gap(a.into_iter(), V, hi, 3), Some(V + 6 * PAGE_SIZE));
        assert_eq!(find_gap(a.into_iter(), V, hi, 4), None);
        assert_eq!(find_gap([].into_iter(), u64::MAX - PAGE_SIZE, u64::MAX, 4), None);
    }

    #[test]
    fn gap_at_a_fixed_place_sees_an_area_that_starts_below_it() {
        // vmalloc_range(lo, lo + size + guard): exactly at lo, or nowhere.
        let a = [(V, V + 8 * PAGE_SIZE)];
        let lo = V + 4 * PAGE_SIZE;
        assert_eq!(find_gap(a.into_iter(), lo, lo + 2 * PAGE_SIZE, 1), None);
        // just past the area's guard page it fits
        let lo = V + 9 * PAGE_SIZE;
        assert_eq!(find_gap(a.into_iter(), lo, lo + 2 * PAGE_SIZE, 1), Some(lo));
        // its guard page is not free either
        let lo = V + 8 * PAGE_SIZE;
        assert_eq!(find_gap(a.into_iter(), lo, lo + 2 * PAGE_SIZE, 1), None);
    }

    #[test]
    fn gap_never_overlaps_random_layouts() {
        let mut x: u64 = 0x1234_5678;
        for _ in 0..2000 {
            let mut areas: Vec<(u64, u64)> = Vec::new();
            let mut cur = V;
            for _ in 0..(x % 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                cur += (x % 5) * PAGE_SIZE;
                let len = (1 + x % 4) * PAGE_SIZE;
                areas.push((cur, cur + len));
                cur += len + PAGE_SIZE;
            }
            let pages = 1 + x % 6;
            let g = find_gap(areas.iter().copied(), V, V + (1 << 30), pages).unwrap();
            let (gs, ge) = (g, g + pages * PAGE_SIZE);
            for &(s, e) in &areas {
                // neither the new area nor its guard page overlaps an area or its guard page
                assert!(ge + PAGE_SIZE <= s || e + PAGE_SIZE <= gs, "{gs:#x}..{ge:#x} vs {s:#x}..{e:#x}");
            }
            x = x.wrapping_add(0x9e37_79b9);
        }
    }
}
