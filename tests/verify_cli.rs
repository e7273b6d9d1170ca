//! Every manifest case through the `trustgate verify` binary: exit status,
//! JSON verdict, and for accepts the NameID, device trust and attributes.

#[path = "utils/manifest.rs"]
mod manifest;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::Value;

fn command_for(case: &manifest::Case) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
    cmd.arg("verify")
        .arg("--idp-cert")
        .arg(&case.idp_cert)
        .arg("--now")
        .arg(&case.now)
        .arg("--skew")
        .arg("0s")
        .arg("--protocol")
        .arg(&case.protocol)
        .arg("--trust-attribute")
        .arg("DeviceTrustSignal")
        .arg("--trust-attribute")
        .arg("DeviceManaged");
    for cert in &case.extra_idp_certs {
        cmd.arg("--idp-cert").arg(cert);
    }
    if let Some(a) = &case.audience {
        cmd.arg("--audience").arg(a);
    }
    if let Some(a) = &case.acs_url {
        cmd.arg("--acs-url").arg(a);
    }
    if case.legacy_sha1 {
        cmd.arg("--allow-sha1");
    }
    cmd
}

/// Runs the binary with `input` on stdin; returns (exit code, JSON).
fn run_stdin(case: &manifest::Case, input: &[u8]) -> (i32, Value) {
    let mut child = command_for(case)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

fn expected_trust(v: &str) -> &'static str {
    match v {
        "TRUSTED" | "true" => "trusted",
        "NOT_TRUSTED" | "false" => "not_trusted",
        _ => "unknown",
    }
}

fn check(case: &manifest::Case, code: i32, json: &Value) -> Option<String> {
    let verdict = json["verdict"].as_str().unwrap_or("");
    let reason = json["reason"].as_str().unwrap_or("");
    if case.accept && verdict == "accept" && code == 0 {
        if json["name_id"].as_str() != case.name_id.as_deref() {
            return Some(format!("name_id {}", json["name_id"]));
        }
        if let Some(t) = &case.device_trust {
            if json["device_trust"].as_str() != Some(expected_trust(t)) {
                return Some(format!("device_trust {}", json["device_trust"]));
            }
        }
        if let Some(want) = &case.attributes {
            let have: BTreeMap<String, Vec<String>> =
                serde_json::from_value(json["attributes"].clone()).unwrap_or_default();
            if &have != want {
                return Some(format!("attributes {have:?}"));
            }
        }
        return None;
    }
    let may_reject = !case.accept || case.also_safe.as_deref() == Some("reject");
    if may_reject && verdict == "reject" && code == 1 {
        let allowed = manifest::allowed_reasons(case);
        if allowed.contains(&reason) {
            return None;
        }
        return Some(format!(
            "reject reason {reason}, expected one of {allowed:?}"
        ));
    }
    Some(format!("exit {code}, output {json}"))
}

#[test]
fn every_manifest_case_through_the_binary() {
    let cases = manifest::all();
    assert_eq!(cases.len(), 82);
    let mut failures = Vec::new();
    for case in &cases {
        let out = command_for(case)
            .arg(&case.file)
            .output()
            .expect("binary runs");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if let Some(f) = check(case, out.status.code().unwrap_or(-1), &json) {
            failures.push(format!("{}: {f}", case.label()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn base64_value_and_form_body_give_the_same_verdict_as_xml() {
    let b64 = base64::engine::general_purpose::STANDARD;
    for case in manifest::all().iter().filter(|c| c.protocol == "saml2") {
        let xml = std::fs::read(&case.file).unwrap();
        // Base64 broken into 76-character lines, as IdPs send it.
        let encoded = b64.encode(&xml);
        let wrapped: Vec<&str> = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let (code, json) = run_stdin(case, wrapped.join("\r\n").as_bytes());
        if let Some(f) = check(case, code, &json) {
            panic!("{} as base64: {f}", case.label());
        }
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", &encoded)
            .append_pair("RelayState", "/app")
            .finish();
        let (code, json) = run_stdin(case, form.as_bytes());
        if let Some(f) = check(case, code, &json) {
            panic!("{} as a form body: {f}", case.label());
        }
    }
}

#[test]
fn wsfed_form_body_is_verified() {
    for case in manifest::all().iter().filter(|c| c.protocol == "wsfed") {
        let xml = std::fs::read_to_string(&case.file).unwrap();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("wa", "wsignin1.0")
            .append_pair("wresult", &xml)
            .append_pair("wctx", "rm=0&id=passive")
            .finish();
        let (code, json) = run_stdin(case, form.as_bytes());
        if let Some(f) = check(case, code, &json) {
            panic!("{} as a form body: {f}", case.label());
        }
    }
}

#[test]
fn usage_and_io_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .args([
            "verify",
            "--idp-cert",
            "/nonexistent.pem",
            "/nonexistent.xml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let case = &manifest::load("independent")[0];
    let out = command_for(case)
        .args(["--now", "yesterday"])
        .arg(&case.file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .args(["verify", "x.xml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --idp-cert is a usage error"
    );
}

#[test]
fn reject_output_carries_no_claims() {
    let case = manifest::load("independent")
        .into_iter()
        .find(|c| c.file_name == "r01_tampered_device_trust.xml")
        .unwrap();
    let out = command_for(&case).arg(&case.file).output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verdict"], "reject");
    assert_eq!(json["reason"], "bad_digest");
    assert!(json["name_id"].is_null() && json["device_trust"].is_null());
    assert_eq!(json["attributes"], serde_json::json!({}));
}
