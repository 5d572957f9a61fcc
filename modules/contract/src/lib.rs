//! The contract module.
