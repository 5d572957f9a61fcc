//! The patient module's contract.
