#[path = "../../../../src/arch/ppc64/papr.rs"]
pub mod papr;
#[path = "../../../../src/arch/ppc64/reg.rs"]
pub mod reg;
