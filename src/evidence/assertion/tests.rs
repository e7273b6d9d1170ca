//! Unit tests for the assertion verifier.
