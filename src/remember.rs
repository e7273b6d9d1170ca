//! What trustgate remembers after a decision so that later requests need no
//! assertion: the signed session token (`token`), the decision cache,
//! revocations and lock state (`sessions`), enrollment detours (`detour`),
//! and the small signed cookies they use (`seal`).

pub mod token;

pub mod sessions;

pub mod detour;

pub mod seal;
