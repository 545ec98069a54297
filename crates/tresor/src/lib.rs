//! tresor facade (work in progress).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use tresor_schema::Message;
