//! Where a setting came from, and the one error type of the configuration layer.

use std::fmt;
use std::path::PathBuf;

/// A place in a configuration file: the file as it was opened (after include resolution) and
/// the 1-based line. Line `0` means "the file as a whole" (it could not be read at all).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file, as opened (relative includes are joined to the including file's directory).
    pub file: PathBuf,
    /// 1-based line number; `0` when the error concerns the whole file.
    pub line: u32,
}

impl Location {
    /// Builds a location.
    pub fn new(file: impl Into<PathBuf>, line: u32) -> Self {
        Self { file: file.into(), line }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A configuration error: where, what, and (usually) how to fix it.
///
/// `Display` is `file:line: message (hint)`, the format editors and CI logs recognise.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong, in plain words, naming the key or section.
    pub message: String,
    /// What would be valid, or how to fix it.
    pub hint: Option<String>,
}

impl ConfigError {
    /// An error without a hint.
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Self { location, message: message.into(), hint: None }
    }

    /// Adds (or replaces) the hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_file_line_message_hint() {
        let e = ConfigError::new(Location::new("/etc/swanctl.conf", 7), "unknown key 'foo'")
            .with_hint("valid keys: bar, baz");
        assert_eq!(e.to_string(), "/etc/swanctl.conf:7: unknown key 'foo' (valid keys: bar, baz)");
        let e = ConfigError::new(Location::new("a.conf", 1), "bad");
        assert_eq!(e.to_string(), "a.conf:1: bad");
    }
}
