//! TODO
mod error;
pub mod settings;

pub use error::{ConfigError, Location};
