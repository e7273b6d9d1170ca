//! Pinned IdP keys, taken from configured PEM certificates.
//!
//! The certificate is only a key container: its dates, issuer and chain do
//! not matter, the pinned key is the trust. Choosing which key verifies a
//! given signature is left to `dsig`.

use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::*;

use aws_lc_rs::signature;

/// Why a configured certificate could not be pinned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PEM text holds no CERTIFICATE block.
    #[error("no certificate found in pem")]
    NoCertificate,
    /// A CERTIFICATE block is not valid PEM or DER.
    #[error("certificate {index} does not parse")]
    BadCertificate {
        /// Position of the block in the PEM text, from 0.
        index: usize,
    },
    /// The certificate's key type or curve is not supported.
    #[error("certificate {index} has an unsupported key ({what})")]
    UnsupportedKey {
        /// Position of the block in the PEM text, from 0.
        index: usize,
        /// Which key type was found.
        what: &'static str,
    },
}

impl KeyError {
    /// The static reason, for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::NoCertificate => "no_certificate",
            KeyError::BadCertificate { .. } => "bad_certificate",
            KeyError::UnsupportedKey { .. } => "unsupported_key",
        }
    }
}

/// The kind of a pinned public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with the modulus size in bits.
    Rsa(usize),
    /// ECDSA on P-256.
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// ECDSA on P-521.
    EcP521,
}

impl KeyKind {
    /// For an EC key, the length of one scalar (r or s) in bytes.
    fn ec_scalar_len(self) -> Option<usize> {
        match self {
            KeyKind::EcP256 => Some(32),
            KeyKind::EcP384 => Some(48),
            KeyKind::EcP521 => Some(66),
            KeyKind::Rsa(_) => None,
        }
    }
}

/// A signature algorithm as the verifier may use it with a pinned key: the
/// hash and, for RSA, whether keys under 2048 bits (legacy) are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifyAlg {
    RsaSha1Legacy,
    RsaSha256,
    RsaSha256Legacy,
    RsaSha384,
    RsaSha512,
    RsaSha512Legacy,
    /// ECDSA with SHA-256, SHA-384 or SHA-512 on the key's own curve:
    /// XML-DSig's `ecdsa-shaN` names only the hash, the curve comes from
    /// the key.
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

impl VerifyAlg {
    const ALL: [VerifyAlg; 9] = [
        VerifyAlg::RsaSha1Legacy,
        VerifyAlg::RsaSha256,
        VerifyAlg::RsaSha256Legacy,
        VerifyAlg::RsaSha384,
        VerifyAlg::RsaSha512,
        VerifyAlg::RsaSha512Legacy,
        VerifyAlg::EcdsaSha256,
        VerifyAlg::EcdsaSha384,
        VerifyAlg::EcdsaSha512,
    ];

    /// The algorithm for a key of `kind`; `None` when they do not fit.
    /// ECDSA goes through the ASN.1 (DER) variants, the only ones aws-lc-rs
    /// has for every curve and hash pair; [`PinnedKey::verifies`] turns
    /// XML-DSig's raw r||s into DER first.
    fn algorithm(self, kind: KeyKind) -> Option<&'static dyn signature::VerificationAlgorithm> {
        use signature::*;
        if !self.fits(kind) {
            return None;
        }
        Some(match (self, kind) {
            (VerifyAlg::RsaSha1Legacy, _) => &RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            (VerifyAlg::RsaSha256, _) => &RSA_PKCS1_2048_8192_SHA256,
            (VerifyAlg::RsaSha256Legacy, _) => &RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            (VerifyAlg::RsaSha384, _) => &RSA_PKCS1_2048_8192_SHA384,
            (VerifyAlg::RsaSha512, _) => &RSA_PKCS1_2048_8192_SHA512,
            (VerifyAlg::RsaSha512Legacy, _) => &RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
            (VerifyAlg::EcdsaSha256, KeyKind::EcP256) => &ECDSA_P256_SHA256_ASN1,
            (VerifyAlg::EcdsaSha384, KeyKind::EcP256) => &ECDSA_P256_SHA384_ASN1,
            (VerifyAlg::EcdsaSha512, KeyKind::EcP256) => &ECDSA_P256_SHA512_ASN1,
            (VerifyAlg::EcdsaSha256, KeyKind::EcP384) => &ECDSA_P384_SHA256_ASN1,
            (VerifyAlg::EcdsaSha384, KeyKind::EcP384) => &ECDSA_P384_SHA384_ASN1,
            (VerifyAlg::EcdsaSha512, KeyKind::EcP384) => &ECDSA_P384_SHA512_ASN1,
            (VerifyAlg::EcdsaSha256, KeyKind::EcP521) => &ECDSA_P521_SHA256_ASN1,
            (VerifyAlg::EcdsaSha384, KeyKind::EcP521) => &ECDSA_P521_SHA384_ASN1,
            (VerifyAlg::EcdsaSha512, KeyKind::EcP521) => &ECDSA_P521_SHA512_ASN1,
            _ => return None,
        })
    }

    /// Whether a key of `kind` can verify with this algorithm at all; when
    /// the legacy variants apply is `dsig`'s rule.
    fn fits(self, kind: KeyKind) -> bool {
        match (self, kind) {
            (
                VerifyAlg::EcdsaSha256 | VerifyAlg::EcdsaSha384 | VerifyAlg::EcdsaSha512,
                KeyKind::EcP256 | KeyKind::EcP384 | KeyKind::EcP521,
            ) => true,
            (
                VerifyAlg::RsaSha1Legacy | VerifyAlg::RsaSha256Legacy | VerifyAlg::RsaSha512Legacy,
                KeyKind::Rsa(bits),
            ) => (1024..=8192).contains(&bits),
            (
                VerifyAlg::RsaSha256 | VerifyAlg::RsaSha384 | VerifyAlg::RsaSha512,
                KeyKind::Rsa(bits),
            ) => (2048..=8192).contains(&bits),
            _ => false,
        }
    }
}

/// One trusted IdP signing key, from a configured certificate, made ready
/// once for each algorithm that fits it, so that verifying never parses the
/// key again (for RSA, setting up the modulus is a third of the cost).
#[derive(Clone)]
pub struct PinnedKey {
    kind: KeyKind,
    parsed: Vec<(VerifyAlg, signature::ParsedPublicKey)>,
    cert_der: Vec<u8>,
    subject: String,
    not_after: i64,
}

impl std::fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedKey")
            .field("kind", &self.kind)
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl PinnedKey {
    /// Pins the key of every CERTIFICATE block in `pem`.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<PinnedKey>, KeyError> {
        let mut keys = Vec::new();
        for (index, block) in x509_parser::pem::Pem::iter_from_buffer(pem).enumerate() {
            let block = block.map_err(|_| KeyError::BadCertificate { index })?;
            if block.label != "CERTIFICATE" {
                continue;
            }
            keys.push(Self::from_der(&block.contents).map_err(|e| match e {
                KeyError::BadCertificate { .. } => KeyError::BadCertificate { index },
                KeyError::UnsupportedKey { what, .. } => KeyError::UnsupportedKey { index, what },
                other => other,
            })?);
        }
        if keys.is_empty() {
            return Err(KeyError::NoCertificate);
        }
        Ok(keys)
    }

    /// Pins the key of one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<PinnedKey, KeyError> {
        let bad = KeyError::BadCertificate { index: 0 };
        let (rest, cert) = X509Certificate::from_der(der).map_err(|_| bad.clone())?;
        if !rest.is_empty() {
            return Err(bad);
        }
        let spki = cert.public_key();
        let alg = &spki.algorithm.algorithm;
        let unsupported = |what| KeyError::UnsupportedKey { index: 0, what };
        let kind = if *alg == OID_PKCS1_RSAENCRYPTION {
            match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => KeyKind::Rsa(rsa.key_size()),
                _ => return Err(bad),
            }
        } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or_else(|| unsupported("ec without named curve"))?;
            if curve == OID_EC_P256 {
                KeyKind::EcP256
            } else if curve == OID_NIST_EC_P384 {
                KeyKind::EcP384
            } else if curve == OID_NIST_EC_P521 {
                KeyKind::EcP521
            } else {
                return Err(unsupported("ec curve"));
            }
        } else {
            return Err(unsupported("key algorithm"));
        };
        let public_key = &spki.subject_public_key.data;
        let parsed = VerifyAlg::ALL
            .into_iter()
            .filter_map(|a| a.algorithm(kind).map(|alg| (a, alg)))
            .map(|(a, alg)| {
                signature::ParsedPublicKey::new(alg, public_key.as_ref())
                    .map(|k| (a, k))
                    .map_err(|_| bad.clone())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PinnedKey {
            kind,
            parsed,
            cert_der: der.to_vec(),
            subject: cert.subject().to_string(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// The key type.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The certificate's subject DN, for an expiry gauge label or a log line.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The certificate's notAfter in unix seconds; informative only, since
    /// verification ignores certificate dates.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The DER of the certificate the key was pinned from.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Verifies `signature` over the message whose `digest` the caller
    /// computed, with algorithm `alg`; false when the signature does not
    /// verify, `alg` does not fit the key, or `digest` is not of `alg`'s
    /// hash. An ECDSA signature is XML-DSig's raw r||s, each scalar as long
    /// as the curve's order; any other length is refused.
    pub(crate) fn verifies(
        &self,
        alg: VerifyAlg,
        digest: &aws_lc_rs::digest::Digest,
        signature: &[u8],
    ) -> bool {
        let Some((_, key)) = self.parsed.iter().find(|(a, _)| *a == alg) else {
            return false;
        };
        match self.kind.ec_scalar_len() {
            None => key.verify_digest_sig(digest, signature).is_ok(),
            Some(n) => raw_ecdsa_to_der(signature, n)
                .is_some_and(|der| key.verify_digest_sig(digest, &der).is_ok()),
        }
    }
}

/// XML-DSig 1.1's ECDSA SignatureValue (r||s, each exactly `scalar_len`
/// bytes, big-endian) as the DER `SEQUENCE { INTEGER r, INTEGER s }` of
/// RFC 3279; `None` for a value of any other length.
fn raw_ecdsa_to_der(raw: &[u8], scalar_len: usize) -> Option<Vec<u8>> {
    if raw.len() != 2 * scalar_len {
        return None;
    }
    // A DER INTEGER: minimal (no leading zero bytes), positive (a 0x00
    // before a high bit), and never empty.
    fn integer(out: &mut Vec<u8>, mut n: &[u8]) {
        while n.len() > 1 && n[0] == 0 {
            n = &n[1..];
        }
        let pad = n[0] & 0x80 != 0;
        out.push(0x02);
        push_len(out, n.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(n);
    }
    fn push_len(out: &mut Vec<u8>, len: usize) {
        // The longest body here is two P-521 integers, 2 * (2 + 67) bytes.
        if len < 0x80 {
            out.push(len as u8);
        } else {
            out.push(0x81);
            out.push(len as u8);
        }
    }
    let (r, s) = raw.split_at(scalar_len);
    let mut body = Vec::with_capacity(raw.len() + 6);
    integer(&mut body, r);
    integer(&mut body, s);
    let mut der = Vec::with_capacity(body.len() + 3);
    der.push(0x30);
    push_len(&mut der, body.len());
    der.extend_from_slice(&body);
    Some(der)
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::digest;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/legacy-keys/"
        );
        std::fs::read(format!("{dir}{name}")).expect("fixture")
    }

    /// OpenSSL's signatures under a 1024-bit key verify only through the
    /// legacy variants, only over the right digest of the right bytes.
    #[test]
    fn small_rsa_keys_verify_openssl_signatures_only_as_legacy() {
        let key = PinnedKey::from_pem(&fixture("rsa1024.pem"))
            .expect("pins")
            .remove(0);
        assert_eq!(key.kind(), KeyKind::Rsa(1024));
        let message = fixture("message.txt");
        let sig256 = fixture("message.rsa1024-sha256.sig");
        let sig512 = fixture("message.rsa1024-sha512.sig");
        let sha256 = digest::digest(&digest::SHA256, &message);
        let sha512 = digest::digest(&digest::SHA512, &message);

        assert!(key.verifies(VerifyAlg::RsaSha256Legacy, &sha256, &sig256));
        assert!(key.verifies(VerifyAlg::RsaSha512Legacy, &sha512, &sig512));
        // The modern variants do not fit a key under 2048 bits.
        assert!(!key.verifies(VerifyAlg::RsaSha256, &sha256, &sig256));
        assert!(!key.verifies(VerifyAlg::RsaSha512, &sha512, &sig512));
        // A digest of another algorithm, another message, or the other
        // signature: refused.
        assert!(!key.verifies(VerifyAlg::RsaSha256Legacy, &sha512, &sig512));
        let other = digest::digest(&digest::SHA256, b"another message");
        assert!(!key.verifies(VerifyAlg::RsaSha256Legacy, &other, &sig256));
        assert!(!key.verifies(VerifyAlg::RsaSha256Legacy, &sha256, &sig512));
        let mut flipped = sig256.clone();
        flipped[10] ^= 1;
        assert!(!key.verifies(VerifyAlg::RsaSha256Legacy, &sha256, &flipped));
    }

    #[test]
    fn raw_ecdsa_becomes_minimal_positive_der() {
        // High bit set: a zero byte keeps the integer positive.
        let mut raw = vec![0x80; 32];
        raw.extend([0x01; 32]);
        let der = raw_ecdsa_to_der(&raw, 32).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x45, 0x02, 0x21, 0x00]);
        assert_eq!(der[5], 0x80);
        assert_eq!(&der[5 + 32..5 + 34], &[0x02, 0x20]);
        // Leading zero bytes go; an all-zero scalar stays one zero byte.
        let mut raw = vec![0; 31];
        raw.push(7);
        raw.extend([0; 32]);
        assert_eq!(
            raw_ecdsa_to_der(&raw, 32).unwrap(),
            [0x30, 0x06, 0x02, 0x01, 0x07, 0x02, 0x01, 0x00]
        );
        // P-521: the body passes 127 bytes, so the length takes two bytes.
        let der = raw_ecdsa_to_der(&[0xff; 132], 66).unwrap();
        assert_eq!(&der[..3], &[0x30, 0x81, 2 * (2 + 67)]);
        // Only r||s of exactly the curve's length.
        for len in [0, 63, 65, 96, 128] {
            assert!(raw_ecdsa_to_der(&vec![1; len], 32).is_none(), "{len}");
        }
    }
}
