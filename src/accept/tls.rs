//! TLS for the traffic listener: rustls 0.23 with its safe defaults (TLS 1.2
//! and 1.3), ALPN h2 and http/1.1, session tickets, and certificates chosen
//! by SNI from a set that a reload can swap.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::TlsCertificate;

/// The certificates by name. The first configured one is the default, used
/// when the client sends no SNI (an IP address) or an unknown name, as nginx
/// does with its default server.
#[derive(Debug)]
struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertSet {
    fn new(certs: &[TlsCertificate]) -> CertSet {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in certs {
            for name in &c.server_names {
                let map = match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_string()),
                    None => exact.entry(name.clone()),
                };
                // The first certificate that names a host keeps it.
                map.or_insert_with(|| c.key.clone());
            }
        }
        CertSet {
            exact,
            wildcard,
            default: certs.first().map(|c| c.key.clone()),
        }
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            // rustls hands SNI over lowercased.
            if let Some(k) = self.exact.get(name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.wildcard.get(parent) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

/// The reloadable certificate resolver.
#[derive(Debug)]
pub struct CertStore {
    set: ArcSwap<CertSet>,
}

impl CertStore {
    /// A store holding `certs`.
    pub fn new(certs: &[TlsCertificate]) -> Arc<CertStore> {
        Arc::new(CertStore {
            set: ArcSwap::from_pointee(CertSet::new(certs)),
        })
    }

    /// Replaces every certificate at once; handshakes in progress keep the
    /// old set.
    pub fn replace(&self, certs: &[TlsCertificate]) {
        self.set.store(Arc::new(CertSet::new(certs)));
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.set.load().pick(hello.server_name())
    }
}

/// The server config: built once, so that session tickets survive reloads.
pub fn server_config(store: Arc<CertStore>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's order of rustls' safe suites (AES-GCM and ChaCha20,
    // forward-secret only), not whatever a client lists first.
    cfg.ignore_client_order = true;
    cfg.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().expect("aws-lc-rs ticketer");
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(64 * 1024);
    Arc::new(cfg)
}

/// A short static label for a failed handshake.
pub fn handshake_failure_reason(e: &io::Error) -> &'static str {
    use rustls::Error as E;
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) {
        return match tls {
            E::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => "not_tls",
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => "protocol",
            E::InappropriateHandshakeMessage { .. } => "protocol",
            E::PeerIncompatible(_) => "incompatible",
            E::PeerMisbehaved(_) => "misbehaved",
            E::AlertReceived(_) => "alert_received",
            E::NoApplicationProtocol => "no_alpn",
            E::General(m) if m.contains("no server certificate") => "no_certificate",
            _ => "other",
        };
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "eof",
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "reset",
        io::ErrorKind::InvalidData => "protocol",
        _ => "io",
    }
}
