//! Pinned IdP keys, taken from configured PEM certificates.
//!
//! The certificate is only a key container: its dates, issuer and chain do
//! not matter, the pinned key is the trust. Choosing which key verifies a
//! given signature is left to `dsig`.

use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
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
    EcdsaP256Sha256,
    EcdsaP384Sha384,
}

impl VerifyAlg {
    const ALL: [VerifyAlg; 8] = [
        VerifyAlg::RsaSha1Legacy,
        VerifyAlg::RsaSha256,
        VerifyAlg::RsaSha256Legacy,
        VerifyAlg::RsaSha384,
        VerifyAlg::RsaSha512,
        VerifyAlg::RsaSha512Legacy,
        VerifyAlg::EcdsaP256Sha256,
        VerifyAlg::EcdsaP384Sha384,
    ];

    fn algorithm(self) -> &'static dyn signature::VerificationAlgorithm {
        use signature::*;
        match self {
            VerifyAlg::RsaSha1Legacy => &RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            VerifyAlg::RsaSha256 => &RSA_PKCS1_2048_8192_SHA256,
            VerifyAlg::RsaSha256Legacy => &RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            VerifyAlg::RsaSha384 => &RSA_PKCS1_2048_8192_SHA384,
            VerifyAlg::RsaSha512 => &RSA_PKCS1_2048_8192_SHA512,
            VerifyAlg::RsaSha512Legacy => &RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
            VerifyAlg::EcdsaP256Sha256 => &ECDSA_P256_SHA256_FIXED,
            VerifyAlg::EcdsaP384Sha384 => &ECDSA_P384_SHA384_FIXED,
        }
    }

    /// Whether a key of `kind` can verify with this algorithm at all; when
    /// the legacy variants apply is `dsig`'s rule.
    fn fits(self, kind: KeyKind) -> bool {
        match (self, kind) {
            (VerifyAlg::EcdsaP256Sha256, KeyKind::EcP256) => true,
            (VerifyAlg::EcdsaP384Sha384, KeyKind::EcP384) => true,
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
            } else {
                return Err(unsupported("ec curve"));
            }
        } else {
            return Err(unsupported("key algorithm"));
        };
        let public_key = &spki.subject_public_key.data;
        let parsed = VerifyAlg::ALL
            .into_iter()
            .filter(|a| a.fits(kind))
            .map(|a| {
                signature::ParsedPublicKey::new(a.algorithm(), public_key.as_ref())
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
    /// hash.
    pub(crate) fn verifies(
        &self,
        alg: VerifyAlg,
        digest: &aws_lc_rs::digest::Digest,
        signature: &[u8],
    ) -> bool {
        self.parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, k)| k.verify_digest_sig(digest, signature).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::digest;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/legacy-keys/");
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
}
