//! Verifies one document N times, for measuring CPU time per verification
//! with `perf stat` when the machine is shared (criterion reports wall time).
//!
//! `cargo run --release --example verify_loop -- FILE N [post|parse|c14n]`
//!
//! `parse` and `c14n` run one stage alone, for instruction counts per stage
//! under `valgrind --tool=callgrind`.

use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use trustgate::evidence::assertion::{bench_support, PinnedKey, Verifier, VerifierConfig};

/// The allocator of the `trustgate` binary, so that the figures are the
/// product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let xml = std::fs::read(&args[1]).expect("file");
    let n: u32 = args[2].parse().expect("count");
    let mode = args.get(3).map(String::as_str).unwrap_or("document");
    if mode == "parse" || mode == "c14n" {
        let parsed = bench_support::parse(&xml).expect("parse");
        let mut out = Vec::new();
        for _ in 0..n {
            if mode == "parse" {
                let p = bench_support::parse(std::hint::black_box(&xml)).unwrap();
                std::hint::black_box(p.nodes());
            } else {
                out.clear();
                parsed.canonicalize_root(&mut out);
                std::hint::black_box(&out);
            }
        }
        return;
    }
    let post = mode == "post";
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/independent/certs/"
    );
    let pem = std::fs::read(format!("{dir}okta_rsa2048.pem")).unwrap();
    let v = Verifier::new(VerifierConfig {
        keys: PinnedKey::from_pem(&pem).unwrap(),
        audience: Some("https://gateway.corp.example/saml/metadata".into()),
        acs_url: Some("https://gateway.corp.example/saml/acs".into()),
        replay_capacity: 0,
        ..VerifierConfig::default()
    });
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "SAMLResponse",
            &base64::engine::general_purpose::STANDARD.encode(&xml),
        )
        .finish();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_660);
    let start = Instant::now();
    for _ in 0..n {
        if post {
            v.verify_post(std::hint::black_box(body.as_bytes()), now)
                .unwrap();
        } else {
            v.verify_document(std::hint::black_box(&xml), now).unwrap();
        }
    }
    let wall = start.elapsed();
    println!(
        "{n} verifications, wall {:.1} us each, {:.0}/s wall",
        wall.as_secs_f64() * 1e6 / n as f64,
        n as f64 / wall.as_secs_f64()
    );
}
