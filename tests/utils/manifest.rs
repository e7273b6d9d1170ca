//! Reads the fixture manifests in `tests/fixtures/{public,independent,ecdsa-interop}`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One `[[case]]` of a manifest, with paths made absolute.
#[derive(Debug, Clone)]
pub struct Case {
    pub set: &'static str,
    pub file: PathBuf,
    pub file_name: String,
    pub protocol: String,
    pub idp_cert: PathBuf,
    /// More pinned certs (`extra_idp_certs`, optional); see `pinned_certs`.
    pub extra_idp_certs: Vec<PathBuf>,
    pub now: String,
    pub acs_url: Option<String>,
    pub audience: Option<String>,
    pub accept: bool,
    pub also_safe: Option<String>,
    pub reason: String,
    pub legacy_sha1: bool,
    pub name_id: Option<String>,
    pub device_trust: Option<String>,
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
}

impl Case {
    /// A short label: set, file and the parameter that makes it distinct.
    pub fn label(&self) -> String {
        format!(
            "{}/{} (now {}, acs {:?}, audience {:?})",
            self.set, self.file_name, self.now, self.acs_url, self.audience
        )
    }

    /// The pinned set: `idp_cert`, then every `extra_idp_certs` entry.
    pub fn pinned_certs(&self) -> Vec<&Path> {
        std::iter::once(self.idp_cert.as_path())
            .chain(self.extra_idp_certs.iter().map(PathBuf::as_path))
            .collect()
    }

    /// `now` as a SystemTime.
    pub fn now_time(&self) -> SystemTime {
        let t =
            time::OffsetDateTime::parse(&self.now, &time::format_description::well_known::Rfc3339)
                .expect("manifest now is rfc 3339");
        SystemTime::from(t)
    }
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn opt_str(v: &toml::Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Every case of one manifest.
pub fn load(set: &'static str) -> Vec<Case> {
    let dir: PathBuf = fixtures_dir().join(set);
    let text = std::fs::read_to_string(dir.join("manifest.toml")).expect("manifest");
    let value: toml::Value = toml::from_str(&text).expect("manifest parses");
    value["case"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| case(set, &dir, c))
        .collect()
}

/// Every case of the public and independent manifests (`ecdsa-interop` is
/// loaded on its own).
pub fn all() -> Vec<Case> {
    let mut v = load("public");
    v.extend(load("independent"));
    v
}

fn case(set: &'static str, dir: &Path, c: &toml::Value) -> Case {
    let file_name = c["file"].as_str().unwrap().to_string();
    let attributes = c.get("attributes").map(|t| {
        t.as_table()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    });
    Case {
        set,
        file: dir.join(&file_name),
        file_name,
        protocol: c["protocol"].as_str().unwrap().to_string(),
        idp_cert: dir.join(c["idp_cert"].as_str().unwrap()),
        extra_idp_certs: c
            .get("extra_idp_certs")
            .map(|v| {
                v.as_array()
                    .expect("extra_idp_certs is an array")
                    .iter()
                    .map(|p| dir.join(p.as_str().expect("extra_idp_certs holds paths")))
                    .collect()
            })
            .unwrap_or_default(),
        now: c["now"]
            .as_datetime()
            .expect("now is a datetime")
            .to_string(),
        acs_url: opt_str(c, "acs_url"),
        audience: opt_str(c, "audience"),
        accept: c["expect"].as_str().unwrap() == "accept",
        also_safe: opt_str(c, "also_safe"),
        reason: c["reason"].as_str().unwrap().to_string(),
        legacy_sha1: c["legacy_sha1"].as_bool().unwrap(),
        name_id: opt_str(c, "name_id"),
        device_trust: c
            .get("device_trust")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        attributes,
    }
}

/// The static reasons a reject case may give. Every reject must match one.
pub fn allowed_reasons(case: &Case) -> &'static [&'static str] {
    let f = case.file_name.as_str();
    let r = case.reason.as_str();
    if r.starts_with("expired") {
        return &["expired"];
    }
    if r.starts_with("wrong audience") {
        return &["wrong_audience"];
    }
    if r.starts_with("wrong recipient") {
        return &["wrong_destination", "wrong_recipient"];
    }
    match f {
        "crewjam/attack_comment_injection_cve_2018_7340.xml" => &["bad_digest"],
        "crewjam/attack_malformed_attribute_name.xml" => &["malformed"],
        "crewjam/attack_xsw_one.xml" | "crewjam/attack_xsw_two.xml" => {
            &["multiple_assertions", "unexpected_structure", "bad_digest"]
        }
        "crewjam/attack_xsw_three.xml"
        | "crewjam/attack_xsw_four.xml"
        | "crewjam/attack_xsw_five.xml"
        | "crewjam/attack_xsw_six.xml"
        | "crewjam/attack_xsw_seven.xml"
        | "crewjam/attack_xsw_eight.xml"
        | "crewjam/attack_xsw_nine.xml" => &["multiple_assertions", "unexpected_structure"],
        "crewjam/attack_multiple_assertions_duplicate_id.xml" => &["multiple_assertions"],
        "python3-saml/not_before_failed.xml" => &["status_not_success", "not_yet_valid"],
        "python3-saml/unsigned_no_signature.xml" => &["unsigned"],
        "python3-saml/attack_signature_wrapping.xml" => {
            &["multiple_assertions", "unexpected_structure", "unsigned"]
        }
        "python3-saml/attack_wrapped_signed_entitydescriptor.xml" => &["unsigned"],
        "r_wsfed_tampered_trust.xml" => &["bad_digest"],
        "r_wsfed_wrong_realm.xml" => &["wrong_audience"],
        "r_wsfed_expired.xml" => &["expired"],
        "r_wsfed_xsw_unsigned_assertion_first.xml" => &["multiple_assertions"],
        "r01_tampered_device_trust.xml" => &["bad_digest"],
        "r02_unsigned.xml" => &["unsigned"],
        "r03_empty_signature_value.xml" => &["bad_signature"],
        "r04_xsw1_response_wrapped_in_signature.xml"
        | "r05_xsw2_response_sibling_before_signature.xml" => {
            &["multiple_assertions", "unexpected_structure"]
        }
        "r06_xsw3_evil_assertion_before_signed.xml"
        | "r07_xsw4_evil_assertion_wraps_signed.xml"
        | "r08_xsw5_signature_moved_to_evil_copy_appended.xml"
        | "r09_xsw6_original_inside_signature_of_evil.xml"
        | "r10_xsw7_signed_assertion_in_extensions.xml"
        | "r11_xsw8_original_in_ds_object.xml"
        | "r11b_xsw8_signed_assertion_in_object_of_bogus_signature.xml"
        | "r12_xsw_signed_assertion_in_advice.xml"
        | "r13_xsw_signed_assertion_in_statusdetail.xml"
        | "r14_two_assertions_evil_second.xml"
        | "r15_duplicate_id_evil_first.xml" => &["multiple_assertions"],
        "r16_comment_injection_nameid.xml" => &["unexpected_structure"],
        "r17_cert_confusion_embedded_attacker_cert.xml" => &["untrusted_key", "bad_signature"],
        "r18_alg_confusion_hmac_with_public_key.xml" => &["weak_algorithm"],
        "r19_sha1_not_allowed.xml" => &["weak_algorithm"],
        "r20_doctype_internal_entities.xml" | "r21_doctype_external_entity_xxe.xml" => &["doctype"],
        "r22_expired.xml" => &["expired"],
        "r23_not_yet_valid.xml" => &["not_yet_valid"],
        "r24_wrong_audience.xml" => &["wrong_audience"],
        "r25_wrong_recipient_destination.xml" => &["wrong_destination", "wrong_recipient"],
        "r26_status_not_success.xml" => &["status_not_success"],
        "r27_signed_by_other_valid_idp_key.xml" => &["untrusted_key"],
        "r28_xpath_transform_excludes_attributes.xml" => &["unexpected_structure"],
        "r29_two_references.xml" => &["unexpected_structure"],
        "r30_whitespace_change_in_signed_assertion.xml" => &["bad_digest"],
        "k02_signed_by_unpinned_c_keyinfo_names_pinned_a.xml" => &["bad_signature"],
        _ => &[],
    }
}
