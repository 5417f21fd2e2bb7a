#[path = "../../../src/hash/access.rs"]
pub mod access;
#[path = "../../../src/hash/backend.rs"]
pub mod backend;
#[path = "../../../src/hash/cell.rs"]
pub mod cell;
#[path = "../../../src/hash/design.rs"]
pub mod design;
#[path = "../../../src/hash/native.rs"]
pub mod native;
#[path = "../../../src/hash/protocol.rs"]
pub mod protocol;
#[path = "../../../src/hash/reason.rs"]
pub mod reason;
#[path = "../../../src/hash/stats.rs"]
pub mod stats;
#[cfg(test)]
#[path = "../../model.rs"]
mod model;
#[cfg(test)]
#[path = "../../native_model.rs"]
mod native_model;
