//! Smoke test of `trustgate-bench`: it starts its own upstream and a gateway
//! child, runs 200 requests of every scenario over TLS with the direct
//! baseline interleaved, and its JSON says every request got the expected
//! status. A check that the harness works, not a timing: no figure is
//! asserted.

use std::process::Command;

mod common;
use common::gateway_bin;

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_trustgate-bench"))
        .args(args)
        .args(["--json", "--gateway-bin"])
        .arg(gateway_bin())
        .output()
        .expect("trustgate-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn check_summary(report: &serde_json::Value, scenarios: &[&str], targets: &[&str]) {
    let summary = report["summary"].as_array().expect("summary rows");
    for s in scenarios {
        for t in targets {
            let row = summary
                .iter()
                .find(|r| r["scenario"] == *s && r["target"] == *t)
                .unwrap_or_else(|| panic!("no row {s} via {t}: {report}"));
            assert_eq!(row["errors"], 0, "{row}");
            assert!(row["requests_per_s"].as_f64().unwrap() > 0.0, "{row}");
            let l = &row["latency_ms"];
            for q in ["p50", "p90", "p99", "p99_9", "max"] {
                assert!(l[q].as_f64().unwrap() > 0.0, "{q} in {row}");
            }
            assert!(l["p50"].as_f64() <= l["p99"].as_f64(), "{row}");
        }
    }
}

#[test]
fn every_scenario_over_tls_h1_with_the_direct_baseline() {
    let report = bench(&[
        "--scenario",
        "passthrough,acs-trusted,acs-untrusted,mixed",
        "--requests",
        "200",
        "--concurrency",
        "8",
        "--baseline",
        "direct",
    ]);
    check_summary(
        &report,
        &["passthrough", "acs-trusted", "acs-untrusted", "mixed"],
        &["trustgate", "direct"],
    );
    // 200 per run, the mixed run split by weight.
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 8);
    assert!(runs.iter().all(|r| r["ok"] == 200), "{report}");
    let ratios = report["ratios"].as_array().unwrap();
    assert!(ratios
        .iter()
        .any(|r| r["scenario"] == "passthrough" && r["throughput_ratio"].as_f64().unwrap() > 0.0));
    let gw = &report["gateway"];
    assert!(gw["cpu_seconds"].as_f64().unwrap() > 0.0, "{gw}");
    assert!(gw["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{gw}");
}

#[test]
fn h2_plain_and_open_loop() {
    let report = bench(&[
        "--scenario",
        "passthrough,acs-untrusted",
        "--requests",
        "200",
        "--http2",
        "--plain",
        "--rate",
        "1000",
        "--idle",
        "20",
    ]);
    check_summary(&report, &["passthrough", "acs-untrusted"], &["trustgate"]);
    assert_eq!(report["settings"]["proto"], "h2");
    assert_eq!(report["settings"]["rate"], 1000.0);
    assert_eq!(report["idle_connections"]["open"], 20);
}

/// The in-process memory probes run the gateway's own caches and report
/// every entry they were given.
#[test]
fn memory_probes_report_what_they_filled() {
    let probe = |cmd: &str| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_trustgate-bench"))
            .args([cmd, "--count", "3000", "--json"])
            .output()
            .expect("trustgate-bench runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd}: {stdout}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{cmd}: {e}: {stdout}"))
    };
    let replay = probe("replay-memory");
    assert_eq!(replay["ids"], 3000, "{replay}");
    // Counted after moka's pending work, so exact.
    assert_eq!(replay["live"], 3000, "{replay}");
    let sessions = probe("sessions-memory");
    assert_eq!(sessions["sessions"], 3000, "{sessions}");
}
