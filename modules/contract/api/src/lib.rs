//! The contract module's contract.
