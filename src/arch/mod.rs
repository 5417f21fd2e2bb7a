//! Everything that knows the POWER ISA or PAPR.
pub mod ppc64;
