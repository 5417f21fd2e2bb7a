//! Device drivers: PCI configuration through RTAS, the 16550 UART over ioremap.
pub mod pci;
#[cfg(target_os = "none")]
pub mod uart;
