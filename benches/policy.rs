//! Micro-benchmarks of the per-request pure path: classify a client, decide
//! with a policy, and sign or verify a session token.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{HeaderValue, USER_AGENT};
use http::HeaderMap;

use trustgate::classify::{classify, classify_user_agent, Client, ClientKind, Platform};
use trustgate::decide::{Facts, Policy, PolicySource, RawPolicy, RawZones, Zones};
use trustgate::evidence::DeviceTrust;
use trustgate::remember::token::{SessionToken, TokenKeys};

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.56";

const POLICY: &str = r#"
default_action = "deny"

[[rules]]
name = "trusted mobile"
platforms = ["ios", "ipados", "android"]
trust = "trusted"
action = "allow"
max_session_age = "8h"

[[rules]]
name = "untrusted mobile"
platforms = ["ios", "ipados", "android"]
trust = "not_trusted"
action = "enroll"

[[rules]]
name = "trusted mac"
platforms = ["macos"]
trust = "trusted"
action = "allow"

[[rules]]
name = "untrusted mac"
platforms = ["macos"]
action = "deny"

[[rules]]
name = "staff desktops on the corp network"
platforms = ["windows", "linux", "chromeos"]
groups = ["staff"]
zones = ["corp"]
action = "allow"
"#;

fn headers(ua: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(USER_AGENT, HeaderValue::from_static(ua));
    h
}

fn policy() -> Policy {
    let mut raw_zones = RawZones::new();
    raw_zones.insert(
        "corp".into(),
        vec!["10.0.0.0/8".into(), "192.168.0.0/16".into()],
    );
    let zones = Zones::try_from(&raw_zones).unwrap();
    let raw: RawPolicy = toml::from_str(POLICY).unwrap();
    Policy::try_from(PolicySource {
        path: "apps.mail",
        raw: &raw,
        zones: &zones,
    })
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let iphone = headers(IPHONE);
    let windows = headers(WINDOWS);
    c.bench_function("classify iphone safari", |b| {
        b.iter(|| classify(black_box(&iphone)))
    });
    c.bench_function("classify windows edge", |b| {
        b.iter(|| classify(black_box(&windows)))
    });
    c.bench_function("classify_user_agent iphone safari", |b| {
        b.iter(|| classify_user_agent(black_box(IPHONE.as_bytes())))
    });

    let p = policy();
    let groups = vec!["everyone".to_owned(), "staff".to_owned()];
    let mobile = Facts {
        client: Client {
            platform: Platform::Ios,
            kind: ClientKind::Browser,
        },
        trust: DeviceTrust::NotTrusted,
        groups: &groups,
        ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
    };
    let desktop_outside = Facts {
        client: Client {
            platform: Platform::Windows,
            kind: ClientKind::Browser,
        },
        ..mobile
    };
    c.bench_function("decide second rule", |b| {
        b.iter(|| p.decide(black_box(&mobile)))
    });
    c.bench_function("decide default after five rules", |b| {
        b.iter(|| p.decide(black_box(&desktop_outside)))
    });

    let keys = TokenKeys::new([[0x5a_u8; 32], [0xa5_u8; 32]]).unwrap();
    let now = SystemTime::now();
    let client = mobile.client;
    let token = SessionToken::new(
        "mail",
        DeviceTrust::Trusted,
        client,
        "alice@example.com",
        now,
        Duration::from_secs(8 * 3600),
    )
    .unwrap();
    let cookie = keys.sign(&token).unwrap();
    c.bench_function("token sign", |b| b.iter(|| keys.sign(black_box(&token))));
    c.bench_function("token verify", |b| {
        b.iter(|| keys.verify(black_box(&cookie), "mail", client, now))
    });
    let rotated = TokenKeys::new([[0xa5_u8; 32], [0x5a_u8; 32]]).unwrap();
    c.bench_function("token verify with the second key", |b| {
        b.iter(|| rotated.verify(black_box(&cookie), "mail", client, now))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
