//! The one error type of assertion verification, with a static reason each.
//!
//! Evidence carried here is limited to sizes, algorithm URIs, short IDs and
//! entity IDs (shortened by [`short`]); never assertion bodies or secrets.
//! Mapping a reason to a page or a status code is left to `answer`.

use std::borrow::Cow;

use super::xml::XmlError;

/// Why an assertion delivery was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// The SAMLResponse (or base64 input) is not valid base64.
    #[error("the saml response is not valid base64")]
    BadBase64,
    /// A body or decoded document is over its configured size.
    #[error("the {what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Which input was too large (`body` or `document`).
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A DOCTYPE, entity declaration or processing instruction is present.
    #[error("{0}")]
    Doctype(XmlError),
    /// The form body or the XML is not well-formed, or not UTF-8.
    #[error("malformed input: {0}")]
    Malformed(Cow<'static, str>),
    /// No signature covers the assertion.
    #[error("no signature covers the assertion")]
    Unsigned,
    /// The digest of the signed element does not match its DigestValue.
    #[error("the digest of element {id} does not match the signed digest")]
    BadDigest {
        /// The ID of the referenced element.
        id: String,
    },
    /// The signature value does not verify with any pinned key.
    #[error("the signature does not verify: {0}")]
    BadSignature(&'static str),
    /// No pinned key can have made this signature.
    #[error("the signing key is not pinned: {0}")]
    UntrustedKey(&'static str),
    /// A digest or signature algorithm outside the whitelist.
    #[error("algorithm not allowed: {uri}")]
    WeakAlgorithm {
        /// The algorithm URI.
        uri: String,
    },
    /// The message or its signature is not shaped as the profile requires.
    #[error("unexpected structure: {0}")]
    UnexpectedStructure(Cow<'static, str>),
    /// More than one assertion in the message.
    #[error("{count} assertions found, exactly one is required")]
    MultipleAssertions {
        /// How many assertion elements the document holds.
        count: usize,
    },
    /// The assertion (or NameID) is encrypted.
    #[error("encrypted assertions are not supported yet")]
    EncryptedUnsupported,
    /// The Response status is not Success.
    #[error("the response status is not success ({code})")]
    StatusNotSuccess {
        /// The top-level StatusCode value, or `missing`.
        code: String,
    },
    /// The Issuer is not the configured IdP.
    #[error("issuer {found} is not the configured idp")]
    WrongIssuer {
        /// The Issuer found.
        found: String,
    },
    /// The audience restriction does not name this SP.
    #[error("the audience restriction does not contain {expected}")]
    WrongAudience {
        /// The configured SP entity ID or realm.
        expected: String,
    },
    /// The bearer confirmation's Recipient is not the ACS URL.
    #[error("recipient {found} is not the acs url")]
    WrongRecipient {
        /// The Recipient found, or `missing`.
        found: String,
    },
    /// The Response Destination is not the ACS URL.
    #[error("destination {found} is not the acs url")]
    WrongDestination {
        /// The Destination found.
        found: String,
    },
    /// A validity window ended.
    #[error("{what} ended at {at}")]
    Expired {
        /// Which bound (`conditions`, `subject confirmation`).
        what: &'static str,
        /// The bound as written.
        at: String,
    },
    /// A validity window has not started yet.
    #[error("{what} starts at {at}")]
    NotYetValid {
        /// Which bound (`conditions`, `issue instant`).
        what: &'static str,
        /// The bound as written.
        at: String,
    },
    /// The assertion ID was already accepted.
    #[error("assertion {id} was already used")]
    Replay {
        /// The assertion ID.
        id: String,
    },
    /// The replay cache holds as many live assertion IDs as it may.
    /// Accepting another would mean forgetting one that could still be
    /// replayed, so the sign-in is refused until some expire.
    #[error("the replay cache holds its limit of {capacity} live assertion ids")]
    ReplayCacheFull {
        /// The configured limit.
        capacity: u64,
    },
    /// The subject's sessions were revoked (by an admin or a UEM event)
    /// after the IdP issued this assertion: it says what was true before.
    /// The verifier never decides this; the gateway that keeps the
    /// revocations does.
    #[error("the assertion was issued before its subject's sessions were revoked")]
    IssuedBeforeRevocation,
}

impl AssertionError {
    /// The short static reason: the metric label and the log field.
    pub fn reason(&self) -> &'static str {
        match self {
            AssertionError::BadBase64 => "bad_base64",
            AssertionError::TooLarge { .. } => "too_large",
            AssertionError::Doctype(_) => "doctype",
            AssertionError::Malformed(_) => "malformed",
            AssertionError::Unsigned => "unsigned",
            AssertionError::BadDigest { .. } => "bad_digest",
            AssertionError::BadSignature(_) => "bad_signature",
            AssertionError::UntrustedKey(_) => "untrusted_key",
            AssertionError::WeakAlgorithm { .. } => "weak_algorithm",
            AssertionError::UnexpectedStructure(_) => "unexpected_structure",
            AssertionError::MultipleAssertions { .. } => "multiple_assertions",
            AssertionError::EncryptedUnsupported => "encrypted_unsupported",
            AssertionError::StatusNotSuccess { .. } => "status_not_success",
            AssertionError::WrongIssuer { .. } => "wrong_issuer",
            AssertionError::WrongAudience { .. } => "wrong_audience",
            AssertionError::WrongRecipient { .. } => "wrong_recipient",
            AssertionError::WrongDestination { .. } => "wrong_destination",
            AssertionError::Expired { .. } => "expired",
            AssertionError::NotYetValid { .. } => "not_yet_valid",
            AssertionError::Replay { .. } => "replay",
            AssertionError::ReplayCacheFull { .. } => "replay_cache_full",
            AssertionError::IssuedBeforeRevocation => "issued_before_revocation",
        }
    }

    /// Every reason this error can report, for pre-registering metric labels.
    pub const REASONS: [&'static str; 22] = [
        "bad_base64",
        "too_large",
        "doctype",
        "malformed",
        "unsigned",
        "bad_digest",
        "bad_signature",
        "untrusted_key",
        "weak_algorithm",
        "unexpected_structure",
        "multiple_assertions",
        "encrypted_unsupported",
        "status_not_success",
        "wrong_issuer",
        "wrong_audience",
        "wrong_recipient",
        "wrong_destination",
        "expired",
        "not_yet_valid",
        "replay",
        "replay_cache_full",
        "issued_before_revocation",
    ];

    pub(crate) fn structure(what: &'static str) -> Self {
        AssertionError::UnexpectedStructure(Cow::Borrowed(what))
    }
}

impl From<XmlError> for AssertionError {
    fn from(e: XmlError) -> Self {
        match e {
            XmlError::Doctype | XmlError::ProcessingInstruction => AssertionError::Doctype(e),
            XmlError::NotUtf8 => {
                AssertionError::Malformed(Cow::Borrowed("the document is not utf-8"))
            }
            XmlError::Malformed(m) => AssertionError::Malformed(Cow::Borrowed(m)),
        }
    }
}

/// A document value fit for an error message: at most 96 characters, with
/// control characters replaced.
pub(crate) fn short(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(96)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 96 {
        out.push('…');
    }
    out
}
