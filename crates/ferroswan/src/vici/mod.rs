//! TODO(vici helper)
