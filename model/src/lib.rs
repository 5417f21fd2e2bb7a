//! Host build of the kernel's pure PTE-protocol modules, for the loom model check
//! (`model.rs`). Module paths mirror the kernel crate so the files compile unchanged.
#![allow(dead_code)]

pub mod arch;
pub mod hash;
pub mod mm;
