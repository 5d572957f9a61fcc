//! The order module.
