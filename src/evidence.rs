//! Evidence about a request: a verified identity assertion, or a gateway
//! session. Deciding what the evidence means is left to `decide`.

pub mod assertion;

use serde::Serialize;

/// Device trust as the IdP reports it (Okta's `device.trusted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceTrust {
    /// The device is managed and trusted.
    Trusted,
    /// The device is known and not trusted.
    NotTrusted,
    /// Device trust is not enabled, or the attribute is absent.
    Unknown,
}

impl DeviceTrust {
    /// The static label used in metrics, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceTrust::Trusted => "trusted",
            DeviceTrust::NotTrusted => "not_trusted",
            DeviceTrust::Unknown => "unknown",
        }
    }
}
