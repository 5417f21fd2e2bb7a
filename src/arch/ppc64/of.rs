//! Open Firmware client interface (IEEE 1275), used once at boot in real mode to read what the
//! kernel needs from the device tree, then `quiesce`. Works with VOF and SLOF: all cells are
//! 32-bit big-endian and every pointer handed over is physical (VOF uses inner pointers as raw
//! physical addresses, so link addresses are stripped of their 0xc nibble first).

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

extern "C" {
    fn of_call(args_pa: u64, entry: u64) -> i32;
}

/// Physical address of a kernel object (linear mapping: VA = 0xc000... + PA; the boot stack is
/// addressed physically already).
pub fn pa<T: ?Sized>(p: *const T) -> u64 {
    crate::mm::layout::linear_pa(p as *const u8 as u64)
}

#[repr(C, align(8))]
struct Args {
    service: u32,
    nargs: u32,
    nret: u32,
    args: [u32; 10],
}

pub struct Of {
    entry: u64,
}

pub type Phandle = u32;

static OF_CALLS: AtomicU64 = AtomicU64::new(0);

impl Of {
    /// # Safety
    /// `entry` must be the firmware's client-interface entry point (r5 at boot), the firmware
    /// must not have been quiesced, and the CPU must be in real mode.
    pub unsafe fn new(entry: u64) -> Of {
        Of { entry }
    }

    /// Calls `service` (NUL-terminated) with `args`; returns the `nret` results.
    fn call(&self, service: &'static [u8], args: &[u32], nret: usize) -> Option<[u32; 10]> {
        debug_assert!(service.last() == Some(&0));
        if args.len() + nret > 10 {
            return None;
        }
        let mut a =
            Args { service: pa(service.as_ptr()) as u32, nargs: args.len() as u32, nret: nret as u32, args: [0; 10] };
        a.args[..args.len()].copy_from_slice(args);
        OF_CALLS.fetch_add(1, Relaxed);
        // SAFETY: `a` and every buffer it points at live below 4 GiB (the kernel is at
        // 0x400000) and outlive the call; the contract of `new` covers the rest.
        let rc = unsafe { of_call(pa(&a as *const Args), self.entry) };
        if rc != 0 {
            return None;
        }
        let mut out = [0u32; 10];
        out[..nret].copy_from_slice(&a.args[args.len()..args.len() + nret]);
        Some(out)
    }

    pub fn finddevice(&self, path: &[u8]) -> Option<Phandle> {
        let mut buf = [0u8; 128];
        let n = path.len().min(127);
        buf[..n].copy_from_slice(&path[..n]);
        let r = self.call(b"finddevice\0", &[pa(buf.as_ptr()) as u32], 1)?[0];
        if r == 0 || r == u32::MAX {
            None
        } else {
            Some(r)
        }
    }

    /// Reads property `name` into `buf`; returns its full length (may exceed `buf`).
    pub fn getprop(&self, ph: Phandle, name: &[u8], buf: &mut [u8]) -> Option<usize> {
        let mut nb = [0u8; 64];
        let n = name.len().min(63);
        nb[..n].copy_from_slice(&name[..n]);
        let r =
            self.call(b"getprop\0", &[ph, pa(nb.as_ptr()) as u32, pa(buf.as_ptr()) as u32, buf.len() as u32], 1)?[0];
        if r == u32::MAX {
            None
        } else {
            Some(r as usize)
        }
    }

    pub fn getprop_u32(&self, ph: Phandle, name: &[u8]) -> Option<u32> {
        let mut b = [0u8; 4];
        match self.getprop(ph, name, &mut b)? {
            n if n >= 4 => Some(u32::from_be_bytes(b)),
            _ => None,
        }
    }

    pub fn child(&self, ph: Phandle) -> Option<Phandle> {
        let r = self.call(b"child\0", &[ph], 1)?[0];
        if r == 0 || r == u32::MAX {
            None
        } else {
            Some(r)
        }
    }

    pub fn peer(&self, ph: Phandle) -> Option<Phandle> {
        let r = self.call(b"peer\0", &[ph], 1)?[0];
        if r == 0 || r == u32::MAX {
            None
        } else {
            Some(r)
        }
    }

    pub fn parent(&self, ph: Phandle) -> Option<Phandle> {
        let r = self.call(b"parent\0", &[ph], 1)?[0];
        if r == 0 || r == u32::MAX {
            None
        } else {
            Some(r)
        }
    }

    /// The full path of node `ph` (NUL-free) in `buf`; returns its length (0 if unknown).
    pub fn package_to_path(&self, ph: Phandle, buf: &mut [u8]) -> usize {
        let Some(r) = self.call(b"package-to-path\0", &[ph, pa(buf.as_ptr()) as u32, buf.len() as u32], 1) else {
            return 0;
        };
        let n = (r[0] as usize).min(buf.len());
        if r[0] == u32::MAX {
            0
        } else {
            buf[..n].iter().position(|&c| c == 0).unwrap_or(n)
        }
    }

    pub fn quiesce(&self) {
        let _ = self.call(b"quiesce\0", &[], 0);
    }

    pub fn calls() -> u64 {
        OF_CALLS.load(Relaxed)
    }
}

/// Reads a property as a string (without trailing NULs) into `out`; returns its length.
pub fn prop_str(of: &Of, ph: Phandle, name: &[u8], out: &mut [u8]) -> usize {
    match of.getprop(ph, name, out) {
        Some(n) => {
            let mut n = n.min(out.len());
            while n > 0 && out[n - 1] == 0 {
                n -= 1;
            }
            n
        }
        None => 0,
    }
}

/// Big-endian cell helpers for property buffers.
pub fn cells(buf: &[u8], idx: usize, ncells: usize) -> u64 {
    let mut v = 0u64;
    for i in 0..ncells {
        let o = (idx + i) * 4;
        v = (v << 32) | u32::from_be_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]) as u64;
    }
    v
}
