//! The library half of the `tresor` command-line tool: argument parsing, the subcommands, and
//! importers, kept in a library so they can be tested and documented on their own.
//!
//! # Code map
//! - [`cli`]: the clap argument structs.
//! - [`commands`]: one function per subcommand.
//! - [`chitchat`]: the chitchat corpus importer and the bundled sample.
//! - [`crash`]: the crash-consistency harness shared by `tresor-crash-writer` and its tests.
//! - [`p2p`]: `tresor peers` and `tresor media`.
//! - [`passphrase`]: `TRESOR_PASSPHRASE` or a terminal prompt.
//!
//! # Architecture invariant
//! The CLI depends on the `tresor` facade only; it never touches a lower crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chitchat;
pub mod cli;
pub mod commands;
pub mod crash;
mod error;
pub mod extended;
pub mod maintenance;
pub mod p2p;
pub mod passphrase;

pub use error::CliError;
