//! The payment module.
