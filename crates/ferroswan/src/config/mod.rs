//! TODO
mod error;
pub mod proposal;
pub mod settings;

pub use error::{ConfigError, Location};
