//! Test support for ferroswan.
