//! Pre-generated assertion POST bodies: SAML 2.0 Responses signed by the demo
//! IdP key, each with its own IDs so the gateway's replay protection takes
//! every one as new. They are made before a run, on every core, so signing
//! never competes with the load.

use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use trustgate::demo::idp::{Grant, Signer};

use crate::gateway::{ACS_URL, AUDIENCE, ISSUER};

/// The demo IdP signer from `certs/demo-idp.key` and `.pem`.
pub fn signer(certs: &Path) -> Result<Signer, String> {
    let read = |f: &str| {
        std::fs::read(certs.join(f)).map_err(|e| format!("{}: {e}", certs.join(f).display()))
    };
    Signer::from_pem(&read("demo-idp.key")?, &read("demo-idp.pem")?).map_err(|e| e.to_string())
}

/// `n` form bodies (`SAMLResponse=...&RelayState=/`) whose device trust is
/// `trust`, valid from now for `lifetime`.
pub fn bodies(signer: &Signer, trust: &str, n: usize, lifetime: Duration) -> Vec<Bytes> {
    let now = SystemTime::now();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let per = n.div_ceil(threads.max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let count = per.min(n.saturating_sub(t * per));
                s.spawn(move || {
                    (0..count)
                        .map(|_| Bytes::from(body(signer, trust, now, lifetime)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect()
    })
}

/// One form body.
pub fn body(signer: &Signer, trust: &str, now: SystemTime, lifetime: Duration) -> String {
    let attrs = vec![
        ("DeviceTrustSignal", vec![trust.to_string()]),
        ("groups", vec!["Everyone".to_string()]),
    ];
    let b64 = signer.response_b64(&Grant {
        issuer: ISSUER,
        audience: AUDIENCE,
        acs_url: ACS_URL,
        name_id: "bench@corp.example",
        attributes: &attrs,
        now,
        lifetime,
    });
    form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &b64)
        .append_pair("RelayState", "/")
        .finish()
}
