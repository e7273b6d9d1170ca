//! Unit tests of the harness's pure parts: the mix and the target URL.

use super::*;

#[test]
fn a_mix_keeps_its_weights_and_interleaves() {
    let mix = parse_mix("passthrough=90,acs-trusted=5,acs-untrusted=5").unwrap();
    assert_eq!(mix.len(), 100);
    let count = |s| mix.iter().filter(|x| **x == s).count();
    assert_eq!(count(Scenario::Passthrough), 90);
    assert_eq!(count(Scenario::AcsTrusted), 5);
    assert_eq!(count(Scenario::AcsUntrusted), 5);
    // Spread out: no two assertion POSTs of a kind are adjacent.
    assert!(mix
        .windows(2)
        .all(|w| w[0] == Scenario::Passthrough || w[0] != w[1]));
    assert_eq!(
        parse_mix("acs-trusted=1").unwrap(),
        vec![Scenario::AcsTrusted]
    );
}

#[test]
fn a_bad_mix_is_refused() {
    assert!(parse_mix("passthrough").is_err());
    assert!(parse_mix("nope=1").is_err());
    assert!(parse_mix("passthrough=0").is_err());
    assert!(parse_mix("passthrough=x").is_err());
}

#[test]
fn targets_are_loopback_only() {
    let certs = PathBuf::from(default_certs());
    let t = parse_target("https://127.0.0.1:8443", &certs, true).unwrap();
    assert_eq!(t.addr.port(), 8443);
    assert!(t.tls.is_some());
    assert_eq!(t.expected(Scenario::AcsUntrusted), http::StatusCode::FOUND);
    let t = parse_target("http://localhost:8081", &certs, false).unwrap();
    assert!(t.tls.is_none());
    assert_eq!(t.expected(Scenario::AcsUntrusted), http::StatusCode::OK);
    assert!(parse_target("http://192.0.2.1:80", &certs, true).is_err());
    assert!(parse_target("ftp://127.0.0.1", &certs, true).is_err());
}
