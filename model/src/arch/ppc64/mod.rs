#[path = "../../../../src/arch/ppc64/reg.rs"]
pub mod reg;
