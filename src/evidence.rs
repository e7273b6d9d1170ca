//! Evidence about a request: a verified identity assertion, or a gateway
//! session. Deciding what the evidence means is left to `decide`.

pub use trustgate_verify as assertion;
pub use trustgate_verify::DeviceTrust;
