//! Device drivers: PCI configuration through RTAS, the 16550 UART over ioremap.
pub mod pci;
pub mod uart;
