#[path = "../../../src/mm/hpte.rs"]
pub mod hpte;
#[path = "../../../src/mm/pte.rs"]
pub mod pte;
#[path = "../../../src/mm/slbe.rs"]
pub mod slbe;
