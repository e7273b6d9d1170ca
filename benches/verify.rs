//! Whole-path verification speed: form decode, base64, parse, c14n, digest,
//! RSA signature and SAML checks, for one Okta-like response.
//!
//! `okta_10_attr` is a 6.9 KB response with 10 attributes, assertion signed
//! RSA-2048/SHA-256 by xmlsec1 (see tests/fixtures/bench/README.md); `a01`
//! is the independent fixture (5 KB, 3 attributes).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trustgate::evidence::assertion::{bench_support, PinnedKey, Verifier, VerifierConfig};

/// The allocator of the `trustgate` binary, so that the figures are the
/// product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn verifier() -> Verifier {
    let pem = std::fs::read(fixtures().join("independent/certs/okta_rsa2048.pem")).unwrap();
    Verifier::new(VerifierConfig {
        idp_entity_id: Some("http://www.okta.com/exkJTvJmH43mEMjCjd7Y".into()),
        keys: PinnedKey::from_pem(&pem).unwrap(),
        audience: Some("https://gateway.corp.example/saml/metadata".into()),
        acs_url: Some("https://gateway.corp.example/saml/acs".into()),
        // The same document is verified again and again.
        replay_capacity: 0,
        ..VerifierConfig::default()
    })
}

fn form_body(xml: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
    form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &b64)
        .append_pair("RelayState", "/app/inbox")
        .finish()
        .into_bytes()
}

fn bench(c: &mut Criterion) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_660);
    let v = verifier();
    let mut group = c.benchmark_group("verify");
    for (name, path) in [
        (
            "okta_10_attr",
            "bench/okta_10_attributes_rsa2048_sha256_xmlsec1.xml",
        ),
        (
            "a01",
            "independent/a01_okta_rsa2048_sha256_assertion_signed.xml",
        ),
    ] {
        let xml = std::fs::read(fixtures().join(path)).unwrap();
        let body = form_body(&xml);
        assert!(v.verify_post(&body, now).is_ok(), "{name} verifies");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{name}/post"), |b| {
            b.iter(|| v.verify_post(std::hint::black_box(&body), now).unwrap())
        });
        group.bench_function(format!("{name}/document"), |b| {
            b.iter(|| v.verify_document(std::hint::black_box(&xml), now).unwrap())
        });
    }
    group.finish();

    // The stages alone, on the 10-attribute response.
    let xml = std::fs::read(fixtures().join("bench/okta_10_attributes_rsa2048_sha256_xmlsec1.xml"))
        .unwrap();
    let body = form_body(&xml);
    let mut group = c.benchmark_group("stage");
    group.throughput(Throughput::Bytes(xml.len() as u64));
    group.bench_function("form + base64 decode", |b| {
        b.iter(|| bench_support::decode_post(std::hint::black_box(&body)).unwrap())
    });
    group.bench_function("parse", |b| {
        b.iter(|| {
            bench_support::parse(std::hint::black_box(&xml))
                .unwrap()
                .nodes()
        })
    });
    let parsed = bench_support::parse(&xml).unwrap();
    let mut out = Vec::with_capacity(xml.len());
    group.bench_function("c14n of the response", |b| {
        b.iter(|| {
            parsed.canonicalize_root(&mut out);
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
