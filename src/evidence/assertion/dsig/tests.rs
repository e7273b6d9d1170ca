//! Unit tests for the signature checks.
