//! Micro-benchmarks the other two files leave out: assertion verification
//! per signature algorithm, policy decision over ten rules, and the session
//! check on a decision-cache hit and miss.
//!
//! Verification uses the independent fixtures (signed by signxml, checked by
//! xmlsec1): a01 RSA-2048/SHA-256, a02 RSA-3072 (the only 3072-bit vector,
//! SHA-384), a04 ECDSA P-256/SHA-256. RSA-2048 is also in `verify.rs`; it is
//! repeated here so the three algorithms sit in one group.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use trustgate::classify::{Client, ClientKind, Platform};
use trustgate::decide::{Facts, Policy, PolicySource, RawPolicy, RawZones, Zones};
use trustgate::evidence::assertion::{PinnedKey, Verifier, VerifierConfig};
use trustgate::evidence::DeviceTrust;
use trustgate::remember::sessions::Sessions;
use trustgate::remember::token::{SessionToken, TokenKeys};

fn independent() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/independent")
}

fn verifier(cert: &str) -> Verifier {
    let pem = std::fs::read(independent().join("certs").join(cert)).unwrap();
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

fn verify(c: &mut Criterion) {
    // The fixtures' injected clock: 2026-01-01T00:01:00Z.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_660);
    let mut group = c.benchmark_group("verify by algorithm");
    group.throughput(Throughput::Elements(1));
    for (name, file, cert) in [
        (
            "rsa2048-sha256 a01",
            "a01_okta_rsa2048_sha256_assertion_signed.xml",
            "okta_rsa2048.pem",
        ),
        (
            "rsa3072-sha384 a02",
            "a02_rsa3072_sha384_response_signed.xml",
            "okta_rsa3072.pem",
        ),
        (
            "ecdsa-p256-sha256 a04",
            "a04_ecdsa_p256_sha256_assertion_signed.xml",
            "okta_ec_secp256r1.pem",
        ),
    ] {
        let v = verifier(cert);
        let xml = std::fs::read(independent().join(file)).unwrap();
        assert!(v.verify_document(&xml, now).is_ok(), "{name} verifies");
        group.bench_function(name, |b| {
            b.iter(|| v.verify_document(black_box(&xml), now).unwrap())
        });
    }
    group.finish();
}

/// Ten rules; the benchmarked facts match only the last, or none.
const TEN_RULES: &str = r#"
default_action = "deny"

[[rules]]
name = "admins"
groups = ["admins"]
action = "allow"

[[rules]]
name = "office"
zones = ["office"]
action = "allow"

[[rules]]
name = "trusted ios"
platforms = ["ios", "ipados"]
trust = "trusted"
action = "allow"

[[rules]]
name = "trusted android"
platforms = ["android"]
trust = "trusted"
action = "allow"

[[rules]]
name = "ios native apps"
platforms = ["ios"]
client_kinds = ["native"]
action = "deny"

[[rules]]
name = "android web views"
platforms = ["android"]
client_kinds = ["webview"]
action = "deny"

[[rules]]
name = "trusted mac"
platforms = ["macos"]
trust = "trusted"
action = "allow"

[[rules]]
name = "contractors on the vpn"
groups = ["contractors"]
zones = ["vpn"]
action = "allow"

[[rules]]
name = "linux staff"
platforms = ["linux"]
groups = ["staff"]
action = "allow"

[[rules]]
name = "windows staff"
platforms = ["windows"]
groups = ["staff"]
action = "allow"
"#;

fn decide(c: &mut Criterion) {
    let mut raw_zones = RawZones::new();
    raw_zones.insert("office".into(), vec!["10.1.0.0/16".into()]);
    raw_zones.insert(
        "vpn".into(),
        vec!["172.16.0.0/12".into(), "192.168.0.0/16".into()],
    );
    let zones = Zones::try_from(&raw_zones).unwrap();
    let raw: RawPolicy = toml::from_str(TEN_RULES).unwrap();
    let policy = Policy::try_from(PolicySource {
        path: "apps.mail",
        raw: &raw,
        zones: &zones,
    })
    .unwrap();
    assert_eq!(policy.rules().len(), 10);
    let groups = vec!["everyone".to_owned(), "staff".to_owned()];
    let windows_staff = Facts {
        client: Client {
            platform: Platform::Windows,
            kind: ClientKind::Browser,
        },
        trust: DeviceTrust::NotTrusted,
        groups: &groups,
        ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
    };
    let chromeos = Facts {
        client: Client {
            platform: Platform::Chromeos,
            kind: ClientKind::Browser,
        },
        ..windows_staff
    };
    assert_eq!(&*policy.decide(&windows_staff).rule, "windows staff");
    assert_eq!(&*policy.decide(&chromeos).rule, "default");
    c.bench_function("decide 10 rules, tenth matches", |b| {
        b.iter(|| policy.decide(black_box(&windows_staff)))
    });
    c.bench_function("decide 10 rules, default", |b| {
        b.iter(|| policy.decide(black_box(&chromeos)))
    });
}

fn sessions(c: &mut Criterion) {
    let keys = TokenKeys::new([[0x5a_u8; 32]]).unwrap();
    let client = Client {
        platform: Platform::Ios,
        kind: ClientKind::Browser,
    };
    // The request a session check classifies: an iPhone's Safari.
    let mut request = http::HeaderMap::new();
    request.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        ),
    );
    let now = SystemTime::now();
    let token = || {
        SessionToken::new(
            "mail",
            DeviceTrust::Trusted,
            client,
            "alice@example.com",
            now,
            Duration::from_secs(8 * 3600),
        )
        .unwrap()
    };
    let mut group = c.benchmark_group("session check");

    // A hit: the cookie was issued here, so the decision cache has it.
    let sessions = Sessions::new(Duration::from_secs(8 * 3600), 2_000_000);
    let cookie = sessions.issue(&keys, token(), &request).unwrap();
    assert!(
        sessions
            .check(&keys, &cookie, "mail", &request, now)
            .unwrap()
            .cached
    );
    group.bench_function("hit, 1 cached", |b| {
        b.iter(|| {
            sessions
                .check(&keys, black_box(&cookie), "mail", &request, now)
                .unwrap()
        })
    });

    // The decision cache lookup with 100,000 other sessions in it.
    let big = Sessions::new(Duration::from_secs(8 * 3600), 2_000_000);
    for _ in 0..100_000 {
        big.issue(&keys, token(), &request).unwrap();
    }
    let cookie = big.issue(&keys, token(), &request).unwrap();
    assert!(
        big.check(&keys, &cookie, "mail", &request, now)
            .unwrap()
            .cached
    );
    group.bench_function("hit, 100k cached", |b| {
        b.iter(|| {
            big.check(&keys, black_box(&cookie), "mail", &request, now)
                .unwrap()
        })
    });

    // A miss: a valid cookie this process never saw (another replica issued
    // it, or the cache was cleared): HMAC, then insert.
    let fresh = Sessions::new(Duration::from_secs(8 * 3600), 2_000_000);
    group.bench_function("miss, valid cookie (hmac + insert)", |b| {
        b.iter_batched(
            || keys.sign(&token()).unwrap(),
            |cookie| {
                fresh
                    .check(&keys, black_box(&cookie), "mail", &request, now)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    // A miss that fails: a cookie signed with another key.
    let other = TokenKeys::new([[0xa5_u8; 32]]).unwrap();
    let forged = other.sign(&token()).unwrap();
    assert!(fresh.check(&keys, &forged, "mail", &request, now).is_err());
    group.bench_function("miss, bad mac", |b| {
        b.iter(|| {
            fresh
                .check(&keys, black_box(&forged), "mail", &request, now)
                .unwrap_err()
        })
    });
    group.finish();
}

criterion_group!(benches, verify, decide, sessions);
criterion_main!(benches);
