pub mod ppc64;
