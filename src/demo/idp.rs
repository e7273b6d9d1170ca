//! The demo IdP's signer: builds a SAML 2.0 Response whose Assertion carries
//! an enveloped RSA-2048 / SHA-256 signature, the layout and algorithm Okta
//! uses for SAML app signing certificates. The
//! assertion is written directly in exclusive-c14n form, so the digest input
//! is the exact bytes written. The verifier canonicalizes independently; the
//! independently signed fixtures, not this signer, are what prove the
//! verifier right.

use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::answer::escape_html;

const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Why the signer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The key file is not a PKCS#8 RSA key.
    #[error("the demo IdP key is not a PKCS#8 RSA key: {0}")]
    BadKey(String),
    /// The certificate file holds no certificate.
    #[error("the demo IdP certificate is not PEM: {0}")]
    BadCert(String),
}

/// One assertion to issue.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    /// The IdP entity ID (Issuer).
    pub issuer: &'a str,
    /// The SP entity ID (Audience).
    pub audience: &'a str,
    /// The ACS URL (Destination and Recipient).
    pub acs_url: &'a str,
    /// The NameID (an email address).
    pub name_id: &'a str,
    /// Attributes in order, each with its values.
    pub attributes: &'a [(&'a str, Vec<String>)],
    /// When the assertion is issued.
    pub now: SystemTime,
    /// How long it is valid.
    pub lifetime: Duration,
}

/// Signs SAML 2.0 Responses with the demo IdP key.
pub struct Signer {
    key: RsaKeyPair,
    cert_b64: String,
    rng: SystemRandom,
}

impl Signer {
    /// Loads the key (PKCS#8 PEM) and certificate (PEM).
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Signer, SignerError> {
        let rng = SystemRandom::new();
        use rustls_pki_types::pem::PemObject;
        let key_der = match rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem) {
            Ok(rustls_pki_types::PrivateKeyDer::Pkcs8(k)) => k,
            Ok(_) => return Err(SignerError::BadKey("no PKCS#8 key".into())),
            Err(e) => return Err(SignerError::BadKey(e.to_string())),
        };
        let key = RsaKeyPair::from_pkcs8(key_der.secret_pkcs8_der())
            .map_err(|e| SignerError::BadKey(e.to_string()))?;
        let cert = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem)
            .next()
            .ok_or_else(|| SignerError::BadCert("no certificate".into()))?
            .map_err(|e| SignerError::BadCert(e.to_string()))?;
        Ok(Signer {
            key,
            cert_b64: base64::engine::general_purpose::STANDARD.encode(cert.as_ref()),
            rng,
        })
    }

    /// A fresh random ID (`_` and 32 hex digits).
    pub fn new_id(&self) -> String {
        let mut b = [0u8; 16];
        self.rng.fill(&mut b).expect("system randomness");
        format!("_{}", hex::encode(b))
    }

    /// The signed Response, as XML bytes.
    pub fn response(&self, g: &Grant<'_>) -> Vec<u8> {
        let assertion_id = self.new_id();
        let response_id = self.new_id();
        let issued = timestamp(g.now);
        let expires = timestamp(g.now + g.lifetime);

        let mut attrs = String::new();
        for (name, values) in g.attributes {
            attrs.push_str(&format!(
                "<saml:Attribute Name=\"{}\" NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified\">",
                attr(name)
            ));
            for v in values {
                attrs.push_str(&format!(
                    "<saml:AttributeValue>{}</saml:AttributeValue>",
                    text(v)
                ));
            }
            attrs.push_str("</saml:Attribute>");
        }

        // Exclusive-c14n form: the namespace declaration first, then
        // attributes sorted by name, no self-closing tags.
        let head = format!(
            "<saml:Assertion xmlns:saml=\"{NS_SAML}\" ID=\"{assertion_id}\" IssueInstant=\"{issued}\" Version=\"2.0\">\
<saml:Issuer>{issuer}</saml:Issuer>",
            issuer = text(g.issuer)
        );
        let body = format!(
            "<saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">{name_id}</saml:NameID>\
<saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
<saml:SubjectConfirmationData NotOnOrAfter=\"{expires}\" Recipient=\"{acs}\"></saml:SubjectConfirmationData>\
</saml:SubjectConfirmation></saml:Subject>\
<saml:Conditions NotBefore=\"{issued}\" NotOnOrAfter=\"{expires}\"><saml:AudienceRestriction>\
<saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
<saml:AuthnStatement AuthnInstant=\"{issued}\" SessionIndex=\"{assertion_id}\"><saml:AuthnContext>\
<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>\
</saml:AuthnContext></saml:AuthnStatement>\
<saml:AttributeStatement>{attrs}</saml:AttributeStatement></saml:Assertion>",
            name_id = text(g.name_id),
            acs = attr(g.acs_url),
            audience = text(g.audience),
        );
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{head}{body}").as_bytes(),
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let signed_info = |ns: &str| {
            format!(
                "<ds:SignedInfo{ns}><ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:CanonicalizationMethod>\
<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"></ds:SignatureMethod>\
<ds:Reference URI=\"#{assertion_id}\"><ds:Transforms>\
<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"></ds:Transform>\
<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:Transform></ds:Transforms>\
<ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"></ds:DigestMethod>\
<ds:DigestValue>{}</ds:DigestValue></ds:Reference></ds:SignedInfo>",
                b64.encode(digest.as_ref())
            )
        };
        // Canonical SignedInfo carries the ds declaration on its apex.
        let canonical = signed_info(&format!(" xmlns:ds=\"{NS_DS}\""));
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, canonical.as_bytes(), &mut sig)
            .expect("rsa signing into a modulus-sized buffer");
        let signature = format!(
            "<ds:Signature xmlns:ds=\"{NS_DS}\">{}<ds:SignatureValue>{}</ds:SignatureValue>\
<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>",
            signed_info(""),
            b64.encode(&sig),
            self.cert_b64
        );
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<samlp:Response xmlns:samlp=\"{NS_SAMLP}\" Destination=\"{acs}\" ID=\"{response_id}\" IssueInstant=\"{issued}\" Version=\"2.0\">\
<saml:Issuer xmlns:saml=\"{NS_SAML}\">{issuer}</saml:Issuer>\
<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"></samlp:StatusCode></samlp:Status>\
{head}{signature}{body}</samlp:Response>",
            acs = attr(g.acs_url),
            issuer = text(g.issuer),
        )
        .into_bytes()
    }

    /// The Response, base64 for a `SAMLResponse` form field.
    pub fn response_b64(&self, g: &Grant<'_>) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.response(g))
    }
}

/// xs:dateTime in UTC with millisecond precision.
fn timestamp(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).expect("rfc3339 formats any time")
}

/// Escapes element text the way exclusive c14n writes it.
fn text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\r', "&#xD;")
}

/// Escapes an attribute value the way exclusive c14n writes it.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
        .replace('\t', "&#x9;")
        .replace('\n', "&#xA;")
        .replace('\r', "&#xD;")
}

/// An auto-submitting HTML form that posts `fields` to `action`.
pub fn post_form(action: &str, fields: &[(&str, &str)]) -> String {
    let mut inputs = String::new();
    for (name, value) in fields {
        inputs.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape_html(name),
            escape_html(value)
        ));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Signing in</title></head>\
<body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{}\">{inputs}\
<noscript><button type=\"submit\">Continue</button></noscript></form></body></html>\n",
        escape_html(action)
    )
}

#[cfg(test)]
mod tests;
