//! Verifies one document N times, for measuring CPU time per verification
//! with `perf stat` when the machine is shared (criterion reports wall time).
//!
//! `cargo run --release --example verify_loop -- FILE N [post|parse|c14n]`
//!
//! `parse` and `c14n` run one stage alone, for instruction counts per stage
//! under `valgrind --tool=callgrind`.
//!
//! Besides the mean it prints the fastest batch of 64: on a shared machine
//! the host's interruptions land in some batches and not others, so the
//! fastest batch is the steadiest figure for comparing two builds.

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
        let stats = run(n, || {
            if mode == "parse" {
                let p = bench_support::parse(std::hint::black_box(&xml)).unwrap();
                std::hint::black_box(p.nodes());
            } else {
                out.clear();
                parsed.canonicalize_root(&mut out);
                std::hint::black_box(&out);
            }
        });
        stats.print(mode);
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
    let stats = run(n, || {
        if post {
            v.verify_post(std::hint::black_box(body.as_bytes()), now)
                .unwrap();
        } else {
            v.verify_document(std::hint::black_box(&xml), now).unwrap();
        }
    });
    stats.print(if post {
        "verifications (post)"
    } else {
        "verifications"
    });
}

/// Operations per timed batch: short enough that many batches run between
/// the host's interruptions, long enough that reading the clock is noise.
const BATCH: u32 = 64;

struct Stats {
    n: u32,
    wall: Duration,
    best_batch: Duration,
}

impl Stats {
    fn print(&self, what: &str) {
        let each = self.wall.as_secs_f64() * 1e6 / f64::from(self.n);
        let best = if self.best_batch == Duration::MAX {
            "n/a (fewer than one batch)".to_string()
        } else {
            let best = self.best_batch.as_secs_f64() * 1e6 / f64::from(BATCH);
            format!("{best:.1} us each ({:.0}/s)", 1e6 / best)
        };
        println!(
            "{} {what}, wall {each:.1} us each ({:.0}/s); fastest batch of {BATCH}: {best}",
            self.n,
            1e6 / each,
        );
    }
}

/// Runs `op` `n` times in batches, timing the whole and each batch; the
/// fastest batch is the figure least disturbed by a shared machine.
fn run(n: u32, mut op: impl FnMut()) -> Stats {
    let start = Instant::now();
    let mut best_batch = Duration::MAX;
    let mut done = 0;
    while done < n {
        let batch = BATCH.min(n - done);
        let t = Instant::now();
        for _ in 0..batch {
            op();
        }
        if batch == BATCH {
            best_batch = best_batch.min(t.elapsed());
        }
        done += batch;
    }
    Stats {
        n,
        wall: start.elapsed(),
        best_batch,
    }
}
