//! Assertion verification: a SAML 2.0 Response or a WS-Fed wresult in, a
//! [`VerifiedAssertion`] out, or an [`AssertionError`] with a static reason.
//!
//! The pipeline is decode (`form`) -> parse once (`xml`) -> signature
//! (`dsig` over `c14n`, keys from `keys`; it returns a `Signed` handle to
//! the covered element) -> protocol checks (`saml2`, `wsfed`, which read
//! claims only through that handle) -> replay (`replay`). It is pure: bytes
//! and `now` in, a value out, no I/O. What device trust or groups mean for
//! access is left to `decide`.

mod c14n;
mod dsig;
mod error;
mod form;
mod keys;
pub mod replay;
mod saml2;
mod wsfed;
mod xml;

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

pub use error::AssertionError;
pub use keys::{KeyError, KeyKind, PinnedKey};
pub use xml::XmlError;

/// Device trust as the IdP reports it (Okta's `device.trusted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
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

use dsig::{Covered, Signed};
use xml::Document;

/// The protocol an assertion arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// SAML 2.0 Web Browser SSO, POST binding.
    Saml2,
    /// WS-Federation passive requestor (`wsignin1.0`).
    WsFed,
}

impl Protocol {
    /// The static label used in metrics, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Saml2 => "saml2",
            Protocol::WsFed => "wsfed",
        }
    }
}

/// Which protocol an app's IdP speaks, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolSelector {
    /// Only SAML 2.0 Responses.
    Saml2,
    /// Only WS-Fed wresults.
    WsFed,
    /// Whichever the message is.
    #[default]
    Auto,
}

impl ProtocolSelector {
    fn allows(self, p: Protocol) -> bool {
        match self {
            ProtocolSelector::Auto => true,
            ProtocolSelector::Saml2 => p == Protocol::Saml2,
            ProtocolSelector::WsFed => p == Protocol::WsFed,
        }
    }
}

impl std::str::FromStr for ProtocolSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "saml2" => Ok(ProtocolSelector::Saml2),
            "wsfed" => Ok(ProtocolSelector::WsFed),
            "auto" => Ok(ProtocolSelector::Auto),
            other => Err(format!(
                "unknown protocol {other:?}: expected saml2, wsfed or auto"
            )),
        }
    }
}

/// How device trust is read from the assertion's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustMapping {
    /// Attribute names to look for, in order; the first present one counts.
    pub attributes: Vec<String>,
    /// Attribute value (compared ASCII case-insensitively) to device trust.
    /// Values not listed map to `Unknown`.
    pub values: Vec<(String, DeviceTrust)>,
}

impl Default for TrustMapping {
    fn default() -> Self {
        TrustMapping {
            attributes: vec!["DeviceTrustSignal".to_string()],
            values: vec![
                ("TRUSTED".to_string(), DeviceTrust::Trusted),
                ("NOT_TRUSTED".to_string(), DeviceTrust::NotTrusted),
                ("UNKNOWN".to_string(), DeviceTrust::Unknown),
                ("true".to_string(), DeviceTrust::Trusted),
                ("false".to_string(), DeviceTrust::NotTrusted),
                (String::new(), DeviceTrust::Unknown),
            ],
        }
    }
}

impl TrustMapping {
    /// Device trust from the attributes: `Unknown` when no configured
    /// attribute is present, or when its values disagree.
    pub fn device_trust(&self, attributes: &[(String, Vec<String>)]) -> DeviceTrust {
        let Some(values) = self.attributes.iter().find_map(|name| {
            attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_slice())
        }) else {
            return DeviceTrust::Unknown;
        };
        let map = |v: &String| {
            let v = v.trim();
            self.values
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(v))
                .map_or(DeviceTrust::Unknown, |(_, t)| *t)
        };
        let mut it = values.iter().map(map);
        let Some(first) = it.next() else {
            return DeviceTrust::Unknown;
        };
        if it.all(|t| t == first) {
            first
        } else {
            DeviceTrust::Unknown
        }
    }
}

/// Everything the verifier needs to know about one IdP and SP.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Which protocol to accept.
    pub protocol: ProtocolSelector,
    /// The IdP entity ID every Issuer must equal; unchecked when `None`.
    pub idp_entity_id: Option<String>,
    /// The pinned IdP signing keys (several for rollover).
    pub keys: Vec<PinnedKey>,
    /// Accept SHA-1 digests and RSA-SHA1 signatures (legacy IdPs only).
    pub allow_sha1: bool,
    /// The SP entity ID (SAML) or wtrealm (WS-Fed); unchecked when `None`.
    pub audience: Option<String>,
    /// The ACS URL for Destination and Recipient; unchecked when `None`.
    pub acs_url: Option<String>,
    /// Allowed clock skew on every time bound.
    pub skew: Duration,
    /// Largest accepted form body in bytes.
    pub max_body_bytes: usize,
    /// Largest accepted decoded XML document in bytes.
    pub max_document_bytes: usize,
    /// How device trust is read.
    pub trust: TrustMapping,
    /// The attribute that lists the user's groups.
    pub groups_attribute: String,
    /// How many live assertion IDs the replay cache holds. Past it, a new
    /// assertion is refused (`replay_cache_full`) until some expire, rather
    /// than forgetting one that could be replayed. 0 turns the replay check
    /// off (offline checks and tests only).
    pub replay_capacity: u64,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            protocol: ProtocolSelector::Auto,
            idp_entity_id: None,
            keys: Vec::new(),
            allow_sha1: false,
            audience: None,
            acs_url: None,
            skew: Duration::from_secs(60),
            max_body_bytes: 512 * 1024,
            max_document_bytes: 256 * 1024,
            trust: TrustMapping::default(),
            groups_attribute: "groups".to_string(),
            replay_capacity: 100_000,
        }
    }
}

/// An assertion delivery that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The verified assertion.
    pub assertion: VerifiedAssertion,
    /// `RelayState` (SAML) or `wctx` (WS-Fed), unverified and opaque.
    pub relay_state: Option<String>,
}

/// SAML's emailAddress NameID format (SAML 1.1's URI, which SAML 2.0 reuses).
pub const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// The key a subject is known by: `name_id` without surrounding XML
/// whitespace (space, tab, CR, LF), lowercased when `email` (an
/// emailAddress NameID). Revocation by a typed-in subject tries both forms.
pub fn subject_key(name_id: &str, email: bool) -> std::borrow::Cow<'_, str> {
    let trimmed = name_id.trim_matches([' ', '\t', '\r', '\n']);
    if email && trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}

/// Facts from a verified assertion. Only the verifier can construct one, and
/// only from elements that a checked signature covered (read through the
/// signature check's handle to the covered element, nothing else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    protocol: Protocol,
    issuer: String,
    name_id: String,
    name_id_format: Option<String>,
    session_index: Option<String>,
    not_on_or_after: Option<SystemTime>,
    issue_instant: SystemTime,
    id: String,
    attributes: Vec<(String, Vec<String>)>,
    device_trust: DeviceTrust,
    /// Which of `attributes` is the configured groups attribute.
    groups: Option<usize>,
    key: usize,
}

impl VerifiedAssertion {
    /// The protocol the assertion arrived with.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
    /// The assertion's Issuer (SAML 1.1: its Issuer attribute).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The subject's NameID (SAML 1.1: NameIdentifier), text joined across
    /// nodes, comments excluded.
    pub fn name_id(&self) -> &str {
        &self.name_id
    }
    /// The NameID Format attribute, if any.
    pub fn name_id_format(&self) -> Option<&str> {
        self.name_id_format.as_deref()
    }
    /// The subject as sessions, revocations and the audit log key it: the
    /// NameID without the whitespace a pretty-printing IdP puts around it,
    /// and in lowercase when its format is emailAddress (mail addresses are
    /// matched without case). See [`subject_key`].
    pub fn subject(&self) -> std::borrow::Cow<'_, str> {
        subject_key(
            &self.name_id,
            self.name_id_format.as_deref() == Some(EMAIL_FORMAT),
        )
    }
    /// The AuthnStatement SessionIndex, if any (SAML 2.0 only).
    pub fn session_index(&self) -> Option<&str> {
        self.session_index.as_deref()
    }
    /// The end of validity: the earliest NotOnOrAfter of the Conditions and
    /// the bearer confirmation, if any.
    pub fn not_on_or_after(&self) -> Option<SystemTime> {
        self.not_on_or_after
    }
    /// When the IdP issued the assertion (its `IssueInstant`), which the
    /// verifier checked is not in the future.
    pub fn issue_instant(&self) -> SystemTime {
        self.issue_instant
    }
    /// The assertion ID (`ID` or `AssertionID`).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Every attribute, in document order, with its values in order.
    pub fn attributes(&self) -> &[(String, Vec<String>)] {
        &self.attributes
    }
    /// The values of one attribute.
    pub fn attribute(&self, name: &str) -> Option<&[String]> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
    /// Device trust under the configured mapping.
    pub fn device_trust(&self) -> DeviceTrust {
        self.device_trust
    }
    /// The values of the configured groups attribute.
    pub fn groups(&self) -> &[String] {
        self.groups
            .and_then(|i| self.attributes.get(i))
            .map_or(&[], |(_, v)| v.as_slice())
    }
    /// Which pinned key (an index into [`VerifierConfig::keys`]) verified
    /// the signature that the claims were read through; during a rollover,
    /// whether the IdP has moved to the new key.
    pub fn key_index(&self) -> usize {
        self.key
    }
}

/// Claims read from a verified assertion, before mapping, and the pinned key
/// whose signature covered them.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    pub(crate) key: usize,
    pub(crate) issuer: String,
    pub(crate) name_id: String,
    pub(crate) name_id_format: Option<String>,
    pub(crate) session_index: Option<String>,
    pub(crate) not_on_or_after: Option<SystemTime>,
    pub(crate) issue_instant: Option<SystemTime>,
    pub(crate) id: String,
    pub(crate) attributes: Vec<(String, Vec<String>)>,
}

impl Claims {
    /// Reads every `Attribute` of a signed AttributeStatement (SAML 2.0 names
    /// it with `Name`, SAML 1.1 with `AttributeName`).
    pub(crate) fn read_attributes(
        &mut self,
        signed: &Signed<'_>,
        statement: Covered,
        ns: &str,
        name_attr: &str,
    ) -> Result<(), AssertionError> {
        for attr in signed.children_named(statement, ns, "Attribute") {
            let name = signed
                .attr(attr, name_attr)
                .ok_or_else(|| AssertionError::structure("an attribute has no name"))?;
            let values = signed
                .children_named(attr, ns, "AttributeValue")
                .map(|v| signed.text(v).into_owned())
                .collect();
            self.push_attribute(name.to_string(), values);
        }
        Ok(())
    }

    /// Appends values to an attribute, merging repeated names.
    pub(crate) fn push_attribute(&mut self, name: String, values: Vec<String>) {
        match self.attributes.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.extend(values),
            None => self.attributes.push((name, values)),
        }
    }
}

/// Verifies assertion deliveries for one IdP/SP pair. Cheap to share across
/// threads; owns the replay cache.
pub struct Verifier {
    cfg: VerifierConfig,
    replay: Option<replay::ReplayCache>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("cfg", &self.cfg).finish()
    }
}

impl Verifier {
    /// A verifier that shares `replay` with others, so that a reload or a
    /// second app does not forget which assertions were used.
    pub fn with_replay(cfg: VerifierConfig, replay: replay::ReplayCache) -> Verifier {
        Verifier {
            cfg,
            replay: Some(replay),
        }
    }

    /// A verifier with its own replay cache.
    pub fn new(cfg: VerifierConfig) -> Verifier {
        let replay =
            (cfg.replay_capacity > 0).then(|| replay::ReplayCache::new(cfg.replay_capacity));
        Verifier { cfg, replay }
    }

    /// The configuration in use.
    pub fn config(&self) -> &VerifierConfig {
        &self.cfg
    }

    /// Verifies an urlencoded POST body: `SAMLResponse` (+ `RelayState`), or
    /// `wa=wsignin1.0` + `wresult` (+ `wctx`).
    pub fn verify_post(&self, body: &[u8], now: SystemTime) -> Result<Delivery, AssertionError> {
        let decoded =
            form::decode_body(body, self.cfg.max_body_bytes, self.cfg.max_document_bytes)?;
        if !self.cfg.protocol.allows(decoded.protocol) {
            return Err(AssertionError::structure(
                "the delivery is not of the configured protocol",
            ));
        }
        let assertion = self.verify(&decoded.document, now, Some(decoded.protocol))?;
        Ok(Delivery {
            assertion,
            relay_state: decoded.relay_state,
        })
    }

    /// Verifies a decoded XML document: a SAML 2.0 Response, or a WS-Trust
    /// RequestSecurityTokenResponse(Collection).
    pub fn verify_document(
        &self,
        xml: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedAssertion, AssertionError> {
        self.verify(xml, now, None)
    }

    /// The whole check; `came_as` is the protocol of the form field the
    /// document arrived in, which the document must match.
    fn verify(
        &self,
        xml: &[u8],
        now: SystemTime,
        came_as: Option<Protocol>,
    ) -> Result<VerifiedAssertion, AssertionError> {
        if xml.len() > self.cfg.max_document_bytes {
            return Err(AssertionError::TooLarge {
                what: "document",
                size: xml.len(),
                limit: self.cfg.max_document_bytes,
            });
        }
        let doc = Document::parse(xml)?;
        let protocol = detect(&doc)?;
        if came_as.is_some_and(|p| p != protocol) {
            return Err(AssertionError::structure(
                "the document does not match the form field it came in",
            ));
        }
        if !self.cfg.protocol.allows(protocol) {
            return Err(AssertionError::structure(
                "the document is not of the configured protocol",
            ));
        }
        let claims = match protocol {
            Protocol::Saml2 => saml2::verify_response(&doc, &self.cfg, now)?,
            Protocol::WsFed => wsfed::verify_rstr(&doc, &self.cfg, now)?,
        };
        // An assertion without an end would be valid forever, and would
        // outlive the replay cache's memory of it.
        if claims.not_on_or_after.is_none() {
            return Err(AssertionError::structure(
                "the assertion has no notonorafter, so it would never expire",
            ));
        }
        self.check_replay(&claims, now)?;
        let device_trust = self.cfg.trust.device_trust(&claims.attributes);
        let groups = claims
            .attributes
            .iter()
            .position(|(n, _)| *n == self.cfg.groups_attribute);
        Ok(VerifiedAssertion {
            protocol,
            issuer: claims.issuer,
            name_id: claims.name_id,
            name_id_format: claims.name_id_format,
            session_index: claims.session_index,
            not_on_or_after: claims.not_on_or_after,
            issue_instant: claims
                .issue_instant
                .ok_or_else(|| AssertionError::structure("the assertion has no issueinstant"))?,
            id: claims.id,
            attributes: claims.attributes,
            device_trust,
            groups,
            key: claims.key,
        })
    }

    /// The key the fleet's replay record of `a` goes under: its issuer and
    /// ID, as this replica's own cache keys it.
    pub fn replay_key(a: &VerifiedAssertion) -> String {
        replay::key(&a.issuer, &a.id)
    }

    /// Forgets `a` in the replay cache: its sign-in was refused before it
    /// happened (the fleet could not be asked), so its retry is no replay.
    pub fn forget(&self, a: &VerifiedAssertion) {
        if let Some(cache) = &self.replay {
            cache.forget(&Self::replay_key(a));
        }
    }

    /// How long a replay record of an assertion valid until `end` is kept:
    /// while any clock within the skew could still accept it.
    pub fn replay_until(&self, end: Option<SystemTime>, now: SystemTime) -> SystemTime {
        end.unwrap_or(now + Duration::from_secs(3600)) + self.cfg.skew
    }

    fn check_replay(&self, claims: &Claims, now: SystemTime) -> Result<(), AssertionError> {
        let Some(cache) = &self.replay else {
            return Ok(());
        };
        // Remember the ID while any clock within the skew could still accept
        // it; without a NotOnOrAfter, for an hour.
        let ttl = claims
            .not_on_or_after
            .and_then(|end| end.duration_since(now).ok())
            .unwrap_or(Duration::from_secs(3600))
            .saturating_add(self.cfg.skew);
        match cache.first_use(replay::key(&claims.issuer, &claims.id), ttl, now) {
            replay::Use::First => Ok(()),
            replay::Use::Again => Err(AssertionError::Replay {
                id: error::short(&claims.id),
            }),
            replay::Use::Full => Err(AssertionError::ReplayCacheFull {
                capacity: cache.capacity(),
            }),
        }
    }
}

/// The protocol of a parsed document, from its root element.
fn detect(doc: &Document) -> Result<Protocol, AssertionError> {
    let root = doc.root;
    if doc.is(root, saml2::SAMLP_NS, "Response") {
        return Ok(Protocol::Saml2);
    }
    if wsfed::is_envelope(doc, root) {
        return Ok(Protocol::WsFed);
    }
    let e = doc.element(root);
    Err(AssertionError::UnexpectedStructure(Cow::Owned(format!(
        "unexpected root element {}",
        error::short(e.local)
    ))))
}

/// The checks SAML 2.0 and SAML 1.1 share, on a covered `assertion` and its
/// `conditions`: the Conditions window, an IssueInstant not in the future,
/// and every audience restriction (named `restriction`, in namespace `ns`)
/// naming the configured audience. Returns the Conditions' NotOnOrAfter and
/// the IssueInstant.
pub(crate) fn check_conditions(
    signed: &Signed<'_>,
    assertion: Covered,
    conditions: Option<Covered>,
    cfg: &VerifierConfig,
    now: SystemTime,
    ns: &str,
    restriction: &str,
) -> Result<(Option<SystemTime>, SystemTime), AssertionError> {
    let skew = cfg.skew;
    let mut end = None;
    if let Some(c) = conditions {
        if let Some(nb) = signed.attr(c, "NotBefore") {
            if later(now, skew) < parse_instant(nb)? {
                return Err(AssertionError::NotYetValid {
                    what: "conditions",
                    at: error::short(nb),
                });
            }
        }
        if let Some(na) = signed.attr(c, "NotOnOrAfter") {
            let t = parse_instant(na)?;
            if earlier(now, skew) >= t {
                return Err(AssertionError::Expired {
                    what: "conditions",
                    at: error::short(na),
                });
            }
            end = Some(t);
        }
    }
    let issue_instant = signed
        .attr(assertion, "IssueInstant")
        .ok_or_else(|| AssertionError::structure("the assertion has no issueinstant"))?;
    let issued = parse_instant(issue_instant)?;
    if later(now, skew) < issued {
        return Err(AssertionError::NotYetValid {
            what: "issue instant",
            at: error::short(issue_instant),
        });
    }
    if let Some(aud) = &cfg.audience {
        let restrictions: Vec<Covered> = conditions
            .map(|c| signed.children_named(c, ns, restriction).collect())
            .unwrap_or_default();
        let ok = !restrictions.is_empty()
            && restrictions.iter().all(|r| {
                signed
                    .children_named(*r, ns, "Audience")
                    .any(|x| signed.text(x).trim() == aud)
            });
        if !ok {
            return Err(AssertionError::WrongAudience {
                expected: error::short(aud),
            });
        }
    }
    Ok((end, issued))
}

/// `now + skew`, saturating: the latest clock reading still tolerated.
pub(crate) fn later(now: SystemTime, skew: Duration) -> SystemTime {
    now.checked_add(skew)
        .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX as u64 * 64))
}

/// `now - skew`, saturating at the epoch.
pub(crate) fn earlier(now: SystemTime, skew: Duration) -> SystemTime {
    now.checked_sub(skew).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Parses an `xs:dateTime` as SAML writes it (UTC, `Z`, optional fraction).
pub(crate) fn parse_instant(s: &str) -> Result<SystemTime, AssertionError> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    let parsed = time::OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339));
    parsed
        .map(SystemTime::from)
        .map_err(|_| AssertionError::structure("a timestamp is not an xs:datetime"))
}

#[cfg(test)]
mod tests;

/// The stages of verification one at a time, for `benches/verify.rs`; not a
/// stable API.
#[doc(hidden)]
pub mod bench_support {
    use super::{c14n, form, replay, xml, AssertionError, XmlError};

    /// The gateway's replay cache, for measuring its memory.
    pub struct Replay(replay::ReplayCache);

    impl Replay {
        /// A cache holding at most `capacity` live IDs.
        pub fn new(capacity: u64) -> Replay {
            Replay(replay::ReplayCache::new(capacity))
        }

        /// Records an assertion as the verifier does; false when refused.
        pub fn first_use(&self, issuer: &str, id: &str, ttl: std::time::Duration) -> bool {
            self.0
                .first_use(replay::key(issuer, id), ttl, std::time::SystemTime::now())
                == replay::Use::First
        }

        /// Live IDs now.
        pub fn live(&self) -> u64 {
            self.0.live()
        }
    }

    /// Decodes a form body as `verify_post` does; the document's length.
    pub fn decode_post(body: &[u8]) -> Result<usize, AssertionError> {
        form::decode_body(body, usize::MAX, usize::MAX).map(|d| d.document.len())
    }

    /// A document parsed as the verifier parses it.
    pub struct Parsed<'a>(xml::Document<'a>);

    /// Parses as the verifier does.
    pub fn parse(doc: &[u8]) -> Result<Parsed<'_>, XmlError> {
        xml::Document::parse(doc).map(Parsed)
    }

    impl Parsed<'_> {
        /// The number of nodes in the tree.
        pub fn nodes(&self) -> usize {
            self.0.nodes.len()
        }

        /// Exclusive c14n (without comments) of the root element into
        /// `out`, which is cleared first.
        pub fn canonicalize_root(&self, out: &mut Vec<u8>) {
            out.clear();
            c14n::canonicalize(&self.0, self.0.root, c14n::Options::default(), out);
        }
    }
}
