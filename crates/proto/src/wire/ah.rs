//! TODO(wire helper): see wire/mod.rs for the contract.
