//! What trustgate remembers after a decision so that later requests need no
//! assertion: the signed session token. Caching decisions, revocation sets
//! and enrollment detours are built on it elsewhere.

pub mod token;
