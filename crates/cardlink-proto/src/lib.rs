//! cardlink's protobuf messages, generated from `proto/cardlink/v1`.
#![allow(missing_docs, clippy::all)]

/// Version 1 of the wire schemas.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/cardlink.v1.rs"));
}
