//! The patient module.
