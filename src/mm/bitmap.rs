//! A three-level bitmap of free frames: bit set = free. Level 1 has a bit per level-0 word
//! that still has a free bit, level 2 a bit per non-empty level-1 word, so allocation and free
//! are O(1) (three word scans of at most 64 bits) for up to 64^3 = 262144 ... and with N0 words
//! any capacity the const parameters allow. Pure and host-tested.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitmapError {
    /// The index is outside the managed range.
    Foreign,
    /// The bit was already free.
    DoubleFree,
    /// The bit was already taken (claim of a used index).
    InUse,
}

pub struct Bitmap3<const N0: usize, const N1: usize, const N2: usize> {
    l0: [u64; N0],
    l1: [u64; N1],
    l2: [u64; N2],
    len: usize,
    free: usize,
}

impl<const N0: usize, const N1: usize, const N2: usize> Bitmap3<N0, N1, N2> {
    pub const CAPACITY: usize = N0 * 64;

    /// All bits taken; `len` usable indices (free them to make them allocatable).
    pub const fn new() -> Self {
        assert!(N1 * 64 >= N0 && N2 * 64 >= N1);
        Bitmap3 { l0: [0; N0], l1: [0; N1], l2: [0; N2], len: 0, free: 0 }
    }

    pub fn set_len(&mut self, len: usize) {
        assert!(len <= Self::CAPACITY);
        self.len = len;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn free_count(&self) -> usize {
        self.free
    }

    pub fn is_free(&self, i: usize) -> bool {
        i < self.len && self.l0[i / 64] & (1 << (i % 64)) != 0
    }

    fn mark_free(&mut self, i: usize) {
        let w = i / 64;
        self.l0[w] |= 1 << (i % 64);
        self.l1[w / 64] |= 1 << (w % 64);
        self.l2[w / 4096] |= 1 << ((w / 64) % 64);
    }

    fn mark_used(&mut self, i: usize) {
        let w = i / 64;
        self.l0[w] &= !(1 << (i % 64));
        if self.l0[w] == 0 {
            self.l1[w / 64] &= !(1 << (w % 64));
            if self.l1[w / 64] == 0 {
                self.l2[w / 4096] &= !(1 << ((w / 64) % 64));
            }
        }
    }

    /// Returns index `i` to the free set.
    pub fn free(&mut self, i: usize) -> Result<(), BitmapError> {
        if i >= self.len {
            return Err(BitmapError::Foreign);
        }
        if self.is_free(i) {
            return Err(BitmapError::DoubleFree);
        }
        self.mark_free(i);
        self.free += 1;
        Ok(())
    }

    /// Takes the specific index `i`.
    pub fn claim(&mut self, i: usize) -> Result<(), BitmapError> {
        if i >= self.len {
            return Err(BitmapError::Foreign);
        }
        if !self.is_free(i) {
            return Err(BitmapError::InUse);
        }
        self.mark_used(i);
        self.free -= 1;
        Ok(())
    }

    /// Takes the lowest free index.
    pub fn alloc_low(&mut self) -> Option<usize> {
        let a = self.l2.iter().position(|&w| w != 0)?;
        let b = a * 64 + self.l2[a].trailing_zeros() as usize;
        let c = b * 64 + self.l1[b].trailing_zeros() as usize;
        let i = c * 64 + self.l0[c].trailing_zeros() as usize;
        self.mark_used(i);
        self.free -= 1;
        Some(i)
    }

    /// Takes the highest free index.
    pub fn alloc_high(&mut self) -> Option<usize> {
        let a = self.l2.iter().rposition(|&w| w != 0)?;
        let b = a * 64 + 63 - self.l2[a].leading_zeros() as usize;
        let c = b * 64 + 63 - self.l1[b].leading_zeros() as usize;
        let i = c * 64 + 63 - self.l0[c].leading_zeros() as usize;
        self.mark_used(i);
        self.free -= 1;
        Some(i)
    }
}

impl<const N0: usize, const N1: usize, const N2: usize> Default for Bitmap3<N0, N1, N2> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;
    type B = Bitmap3<256, 4, 1>;

    fn full(len: usize) -> Box<B> {
        let mut b = Box::new(B::new());
        b.set_len(len);
        for i in 0..len {
            b.free(i).unwrap();
        }
        b
    }

    #[test]
    fn alloc_all_then_exhausted() {
        let mut b = full(1000);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(b.alloc_low().unwrap()));
        }
        assert_eq!(b.alloc_low(), None);
        assert_eq!(b.alloc_high(), None);
        assert_eq!(b.free_count(), 0);
    }

    #[test]
    fn low_and_high_order() {
        let mut b = full(16384);
        assert_eq!(b.alloc_low(), Some(0));
        assert_eq!(b.alloc_high(), Some(16383));
        assert_eq!(b.alloc_low(), Some(1));
        b.free(0).unwrap();
        assert_eq!(b.alloc_low(), Some(0));
    }

    #[test]
    fn double_free_and_foreign_detected() {
        let mut b = full(100);
        let i = b.alloc_low().unwrap();
        b.free(i).unwrap();
        assert_eq!(b.free(i), Err(BitmapError::DoubleFree));
        assert_eq!(b.free(100), Err(BitmapError::Foreign));
        assert_eq!(b.free(5000), Err(BitmapError::Foreign));
    }

    #[test]
    fn claim_specific() {
        let mut b = full(300);
        b.claim(200).unwrap();
        assert_eq!(b.claim(200), Err(BitmapError::InUse));
        assert!(!b.is_free(200));
        assert_eq!(b.free_count(), 299);
        b.free(200).unwrap();
        assert_eq!(b.free_count(), 300);
    }

    #[test]
    fn summary_levels_stay_consistent() {
        // Pseudo-random alloc/free storm checked against a model.
        let mut b = full(16384);
        let mut model = vec![true; 16384];
        let mut x: u64 = 12345;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % 16384) as usize;
            match x % 3 {
                0 => {
                    if let Some(j) = b.alloc_low() {
                        assert!(model[j]);
                        model[j] = false;
                    }
                }
                1 => {
                    if let Some(j) = b.alloc_high() {
                        assert!(model[j]);
                        model[j] = false;
                    }
                }
                _ => {
                    let r = b.free(i);
                    if model[i] {
                        assert_eq!(r, Err(BitmapError::DoubleFree));
                    } else {
                        r.unwrap();
                        model[i] = true;
                    }
                }
            }
        }
        assert_eq!(b.free_count(), model.iter().filter(|&&f| f).count());
        for (i, &f) in model.iter().enumerate() {
            assert_eq!(b.is_free(i), f);
        }
    }
}
