//! TODO(lead): ESP SA processing.

pub mod replay;
