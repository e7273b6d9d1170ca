//! Unit tests for the assertion verifier, one per check, named after the
//! attack or condition. Documents are the independent fixtures; an edit that
//! needs no valid signature (outside the signed element, or one that must
//! break it) is made here on their bytes, and one that must stay signed comes
//! signed by xmlsec1 from `tests/fixtures/signed-edits`. Nothing here signs
//! with the verifier's own c14n.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use base64::Engine as _;

use super::*;

mod props;

const ACS: &str = "https://gateway.corp.example/saml/acs";
const AUDIENCE: &str = "https://gateway.corp.example/saml/metadata";
const OKTA: &str = "http://www.okta.com/exkJTvJmH43mEMjCjd7Y";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn independent(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("independent").join(name)).expect("fixture")
}

fn a01() -> String {
    independent("a01_okta_rsa2048_sha256_assertion_signed.xml")
}

/// 2026-01-01T00:01:00Z, the independent fixtures' `now`.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_660)
}

fn keys(cert: &str) -> Vec<PinnedKey> {
    let pem = std::fs::read(fixtures().join("independent/certs").join(cert)).unwrap();
    PinnedKey::from_pem(&pem).unwrap()
}

fn config() -> VerifierConfig {
    VerifierConfig {
        idp_entity_id: Some(OKTA.to_string()),
        keys: keys("okta_rsa2048.pem"),
        audience: Some(AUDIENCE.to_string()),
        acs_url: Some(ACS.to_string()),
        skew: Duration::ZERO,
        replay_capacity: 0,
        ..VerifierConfig::default()
    }
}

fn verify(xml: &str) -> Result<VerifiedAssertion, AssertionError> {
    Verifier::new(config()).verify_document(xml.as_bytes(), now())
}

fn reason(xml: &str) -> &'static str {
    match verify(xml) {
        Ok(a) => panic!("accepted, name_id {:?}", a.name_id()),
        Err(e) => e.reason(),
    }
}

fn replace_once(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "fixture lacks {from:?}");
    s.replacen(from, to, 1)
}

/// A case of `tests/fixtures/signed-edits`: a01 edited inside its signed
/// assertion and signed again by xmlsec1 with a01's TEST-ONLY key.
fn signed_edit(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("signed-edits").join(name)).expect("fixture")
}

// --- baseline -------------------------------------------------------------

#[test]
fn okta_assertion_signed_is_accepted_with_its_claims() {
    let a = verify(&a01()).unwrap();
    assert_eq!(a.protocol(), Protocol::Saml2);
    assert_eq!(a.issuer(), OKTA);
    assert_eq!(a.name_id(), "alice@corp.example");
    assert_eq!(
        a.name_id_format(),
        Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
    );
    assert_eq!(a.id(), "id65adcb66e87870ae9e2c8d11af36d9dd");
    assert_eq!(
        a.session_index(),
        Some("id65adcb66e87870ae9e2c8d11af36d9dd")
    );
    assert_eq!(a.device_trust(), DeviceTrust::Trusted);
    assert_eq!(a.groups(), ["Everyone", "Engineering"]);
    assert_eq!(
        a.not_on_or_after(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_900_364))
    );
    let names: Vec<&str> = a.attributes().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["email", "DeviceTrustSignal", "groups"]);
}

/// The control of the signed edits: a01 signed again by xmlsec1, with no
/// edit, verifies with a01's claims, so a refusal of an edited case comes
/// from its edit.
#[test]
fn xmlsec1_resigning_round_trips() {
    let a = verify(&signed_edit("s00_a01_resigned_unedited.xml")).unwrap();
    assert_eq!(a, verify(&a01()).unwrap());
}

// --- decoding and parsing ---------------------------------------------------

#[test]
fn post_body_keeps_relay_state() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(a01());
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &b64)
        .append_pair("RelayState", "/inbox?x=1")
        .finish();
    let d = Verifier::new(config())
        .verify_post(body.as_bytes(), now())
        .unwrap();
    assert_eq!(d.relay_state.as_deref(), Some("/inbox?x=1"));
    assert_eq!(d.assertion.name_id(), "alice@corp.example");
}

#[test]
fn base64_with_line_breaks_is_tolerated() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(a01());
    let wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &wrapped.join("\r\n"))
        .finish();
    Verifier::new(config())
        .verify_post(body.as_bytes(), now())
        .unwrap();
}

#[test]
fn bad_base64_is_rejected() {
    let e = Verifier::new(config())
        .verify_post(b"SAMLResponse=%%%not-base64!!", now())
        .unwrap_err();
    assert_eq!(e.reason(), "bad_base64");
}

#[test]
fn oversized_body_is_rejected_before_decoding() {
    let cfg = VerifierConfig {
        max_body_bytes: 100,
        ..config()
    };
    let body = vec![b'a'; 101];
    let e = Verifier::new(cfg).verify_post(&body, now()).unwrap_err();
    assert_eq!(e.reason(), "too_large");
}

#[test]
fn oversized_document_is_rejected() {
    let cfg = VerifierConfig {
        max_document_bytes: 1000,
        ..config()
    };
    let v = Verifier::new(cfg);
    assert_eq!(
        v.verify_document(a01().as_bytes(), now())
            .unwrap_err()
            .reason(),
        "too_large"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(a01());
    let body = format!(
        "SAMLResponse={}",
        b64.replace('+', "%2B").replace('/', "%2F")
    );
    assert_eq!(
        v.verify_post(body.as_bytes(), now()).unwrap_err().reason(),
        "too_large"
    );
}

#[test]
fn duplicate_form_field_is_malformed() {
    let e = Verifier::new(config())
        .verify_post(
            b"SAMLResponse=PGEvPg%3D%3D&SAMLResponse=PGEvPg%3D%3D",
            now(),
        )
        .unwrap_err();
    assert_eq!(e.reason(), "malformed");
}

#[test]
fn form_without_a_message_is_malformed() {
    let e = Verifier::new(config())
        .verify_post(b"RelayState=x", now())
        .unwrap_err();
    assert_eq!(e.reason(), "malformed");
}

#[test]
fn doctype_is_rejected() {
    let xml = replace_once(
        &a01(),
        "<saml2p:Response",
        "<!DOCTYPE r [<!ENTITY e \"x\">]><saml2p:Response",
    );
    assert_eq!(reason(&xml), "doctype");
}

#[test]
fn processing_instruction_is_rejected() {
    let xml = replace_once(&a01(), "<saml2:Subject>", "<?evil x?><saml2:Subject>");
    assert_eq!(reason(&xml), "doctype");
}

#[test]
fn undeclared_entity_is_malformed() {
    let xml = replace_once(&a01(), ">alice@corp.example<", ">alice&evil;<");
    assert_eq!(reason(&xml), "malformed");
}

#[test]
fn non_utf8_document_is_malformed() {
    let mut bytes = a01().into_bytes();
    let at = bytes.len() - 30;
    bytes[at] = 0xFF;
    let e = Verifier::new(config())
        .verify_document(&bytes, now())
        .unwrap_err();
    assert_eq!(e.reason(), "malformed");
}

#[test]
fn latin1_encoding_declaration_is_malformed() {
    let xml = replace_once(&a01(), "encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"");
    assert_eq!(reason(&xml), "malformed");
}

#[test]
fn undeclared_prefix_is_malformed() {
    let xml = replace_once(&a01(), "<saml2:Subject>", "<bogus:Subject>");
    assert_eq!(reason(&xml), "malformed");
}

#[test]
fn truncated_document_is_malformed() {
    let xml = a01();
    assert_eq!(reason(&xml[..xml.len() - 10]), "malformed");
}

// --- signature --------------------------------------------------------------

#[test]
fn tampered_attribute_value_is_bad_digest() {
    let xml = replace_once(&a01(), ">Engineering<", ">Admins<");
    assert_eq!(reason(&xml), "bad_digest");
}

#[test]
fn unsigned_response_is_rejected() {
    let xml = a01();
    let start = xml.find("<ds:Signature").unwrap();
    let end = xml.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let xml = format!("{}{}", &xml[..start], &xml[end..]);
    assert_eq!(reason(&xml), "unsigned");
}

#[test]
fn hmac_signature_method_is_weak_algorithm() {
    let xml = replace_once(
        &a01(),
        "xmldsig-more#rsa-sha256\"/>",
        "xmldsig-more#hmac-sha256\"/>",
    );
    assert_eq!(reason(&xml), "weak_algorithm");
}

#[test]
fn hmac_output_length_is_weak_algorithm() {
    let xml = replace_once(
        &a01(),
        "xmldsig-more#rsa-sha256\"/>",
        "xmldsig-more#rsa-sha256\"><ds:HMACOutputLength>8</ds:HMACOutputLength></ds:SignatureMethod>",
    );
    assert_eq!(reason(&xml), "weak_algorithm");
}

#[test]
fn sha1_digest_without_the_legacy_flag_is_weak_algorithm() {
    let xml = replace_once(
        &a01(),
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2000/09/xmldsig#sha1",
    );
    assert_eq!(reason(&xml), "weak_algorithm");
}

#[test]
fn md5_digest_is_weak_algorithm() {
    let xml = replace_once(
        &a01(),
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#md5",
    );
    assert_eq!(reason(&xml), "weak_algorithm");
}

#[test]
fn xpath_transform_is_refused() {
    let xml = replace_once(
        &a01(),
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
        "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><ds:XPath>1</ds:XPath></ds:Transform>",
    );
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn xslt_transform_is_refused() {
    let xml = replace_once(
        &a01(),
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
        "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>",
    );
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn base64_transform_is_refused() {
    let xml = replace_once(
        &a01(),
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#base64\"/>",
    );
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn inclusive_c14n_is_refused() {
    let xml = replace_once(
        &a01(),
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>",
    );
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn reference_to_another_element_is_refused() {
    let xml = replace_once(
        &a01(),
        "URI=\"#id65adcb66e87870ae9e2c8d11af36d9dd\"",
        "URI=\"#id52d50708c48bccbf871b8ac356474722\"",
    );
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn empty_reference_uri_is_refused() {
    let xml = replace_once(
        &a01(),
        "URI=\"#id65adcb66e87870ae9e2c8d11af36d9dd\"",
        "URI=\"\"",
    );
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn ds_object_in_signature_is_refused() {
    let xml = replace_once(
        &a01(),
        "</ds:KeyInfo></ds:Signature>",
        "</ds:KeyInfo><ds:Object>x</ds:Object></ds:Signature>",
    );
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn empty_signature_value_is_bad_signature() {
    let xml = a01();
    let start = xml.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
    let end = xml.find("</ds:SignatureValue>").unwrap();
    let xml = format!("{}{}", &xml[..start], &xml[end..]);
    assert_eq!(reason(&xml), "bad_signature");
}

#[test]
fn signature_by_another_pinned_type_is_untrusted_key() {
    let cfg = VerifierConfig {
        keys: keys("okta_ec_secp256r1.pem"),
        ..config()
    };
    let e = Verifier::new(cfg)
        .verify_document(a01().as_bytes(), now())
        .unwrap_err();
    assert_eq!(e.reason(), "untrusted_key");
}

#[test]
fn signature_by_an_unpinned_rsa_key_is_rejected() {
    let cfg = VerifierConfig {
        keys: keys("okta_rsa3072.pem"),
        ..config()
    };
    let e = Verifier::new(cfg)
        .verify_document(a01().as_bytes(), now())
        .unwrap_err();
    assert!(
        matches!(e.reason(), "untrusted_key" | "bad_signature"),
        "{e}"
    );
}

#[test]
fn key_rollover_accepts_either_pinned_key() {
    let mut ks = keys("okta_rsa3072.pem");
    ks.extend(keys("okta_ec_secp256r1.pem"));
    ks.extend(keys("okta_rsa2048.pem"));
    let cfg = VerifierConfig {
        keys: ks,
        ..config()
    };
    let a = Verifier::new(cfg)
        .verify_document(a01().as_bytes(), now())
        .unwrap();
    // The claims name the key whose signature they were read through.
    assert_eq!(a.key_index(), 2);
    assert_eq!(verify(&a01()).unwrap().key_index(), 0);
}

#[test]
fn keyinfo_cannot_add_trust() {
    // KeyInfo names an unrelated cert; the pinned key still decides.
    let other =
        std::fs::read_to_string(fixtures().join("independent/certs/attacker_rsa2048.pem")).unwrap();
    let other_b64: String = other.lines().filter(|l| !l.starts_with("-----")).collect();
    let xml = a01();
    let start = xml.find("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
    let end = xml.find("</ds:X509Certificate>").unwrap();
    let xml = format!("{}{}{}", &xml[..start], other_b64, &xml[end..]);
    // Still signed by the pinned key, so it verifies...
    verify(&xml).unwrap();
    // ...and a verifier that pins only the attacker's cert refuses it.
    let cfg = VerifierConfig {
        keys: keys("attacker_rsa2048.pem"),
        ..config()
    };
    let e = Verifier::new(cfg)
        .verify_document(xml.as_bytes(), now())
        .unwrap_err();
    assert_eq!(e.reason(), "bad_signature");
}

#[test]
fn comment_inside_nameid_yields_the_joined_signed_text() {
    let xml = independent("r16_comment_injection_nameid.xml");
    let a = verify(&xml).unwrap();
    assert_eq!(a.name_id(), "admin@corp.example.evil.test");
}

#[test]
fn whitespace_change_in_signed_assertion_is_bad_digest() {
    let xml = replace_once(
        &a01(),
        "</saml2:Issuer><ds:Signature",
        "</saml2:Issuer> <ds:Signature",
    );
    assert_eq!(reason(&xml), "bad_digest");
}

// --- structure --------------------------------------------------------------

#[test]
fn encrypted_assertion_is_encrypted_unsupported() {
    let xml = replace_once(
        &a01(),
        "</saml2p:Response>",
        "<saml2:EncryptedAssertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"/></saml2p:Response>",
    );
    assert_eq!(reason(&xml), "encrypted_unsupported");
}

#[test]
fn encrypted_nameid_is_encrypted_unsupported() {
    let xml = signed_edit("s01_encrypted_nameid.xml");
    assert!(xml.contains("<saml2:Subject><saml2:EncryptedID/>"));
    assert_eq!(reason(&xml), "encrypted_unsupported");
}

#[test]
fn second_assertion_is_multiple_assertions() {
    let xml = a01();
    let start = xml.find("<saml2:Assertion").unwrap();
    let end = xml.find("</saml2p:Response>").unwrap();
    let copy = xml[start..end].replace("id65adcb66", "id00000000");
    let xml = format!("{}{}{}", &xml[..end], copy, &xml[end..]);
    assert_eq!(reason(&xml), "multiple_assertions");
}

#[test]
fn duplicate_ids_are_refused() {
    let xml = replace_once(
        &a01(),
        "<saml2p:Status>",
        "<saml2p:Extensions><x:y xmlns:x=\"urn:x\" ID=\"id65adcb66e87870ae9e2c8d11af36d9dd\"/></saml2p:Extensions><saml2p:Status>",
    );
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn many_ids_are_checked_for_duplicates_to_the_last() {
    // Thousands of IDs (sorted, not compared pairwise): all distinct is
    // fine, one repeat at the very end is not.
    let many: String = (0..5000)
        .map(|i| format!("<x:y ID=\"many{i}\"/>"))
        .collect();
    let with = |extra: &str| {
        replace_once(
            &a01(),
            "<saml2p:Status>",
            &format!(
                "<saml2p:Extensions xmlns:x=\"urn:x\">{many}{extra}</saml2p:Extensions><saml2p:Status>"
            ),
        )
    };
    assert!(verify(&with("")).is_ok());
    assert_eq!(
        reason(&with("<x:y ID=\"many17\"/>")),
        "unexpected_structure"
    );
}

#[test]
fn assertion_matched_by_namespace_not_prefix() {
    // Same prefix, other namespace: this is not a SAML assertion.
    let xml = a01().replace(
        "xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\" xmlns:xs",
        "xmlns:saml2=\"urn:evil\" xmlns:xs",
    );
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn root_other_than_response_is_refused() {
    let xml = "<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"/>";
    assert_eq!(reason(xml), "unexpected_structure");
}

#[test]
fn protocol_selector_refuses_the_other_protocol() {
    let cfg = VerifierConfig {
        protocol: ProtocolSelector::WsFed,
        ..config()
    };
    let e = Verifier::new(cfg)
        .verify_document(a01().as_bytes(), now())
        .unwrap_err();
    assert_eq!(e.reason(), "unexpected_structure");
}

#[test]
fn status_not_success_is_rejected() {
    let xml = replace_once(
        &a01(),
        "urn:oasis:names:tc:SAML:2.0:status:Success",
        "urn:oasis:names:tc:SAML:2.0:status:Responder",
    );
    assert_eq!(reason(&xml), "status_not_success");
}

#[test]
fn missing_status_is_status_not_success() {
    let xml = a01();
    let start = xml.find("<saml2p:Status>").unwrap();
    let end = xml.find("</saml2p:Status>").unwrap() + "</saml2p:Status>".len();
    let xml = format!("{}{}", &xml[..start], &xml[end..]);
    assert_eq!(reason(&xml), "status_not_success");
}

#[test]
fn wrong_issuer_on_the_response_is_rejected() {
    let xml = replace_once(
        &a01(),
        "entity\">http://www.okta.com/exkJTvJmH43mEMjCjd7Y</saml2:Issuer><saml2p:Status>",
        "entity\">http://evil.example</saml2:Issuer><saml2p:Status>",
    );
    assert_eq!(reason(&xml), "wrong_issuer");
}

#[test]
fn wrong_issuer_on_the_assertion_is_rejected() {
    let cfg = VerifierConfig {
        idp_entity_id: Some("http://www.okta.com/other".into()),
        ..config()
    };
    let e = Verifier::new(cfg)
        .verify_document(a01().as_bytes(), now())
        .unwrap_err();
    assert_eq!(e.reason(), "wrong_issuer");
}

#[test]
fn wrong_destination_is_rejected() {
    let xml = replace_once(
        &a01(),
        "Destination=\"https://gateway.corp.example/saml/acs\"",
        "Destination=\"https://evil.example/acs\"",
    );
    assert_eq!(reason(&xml), "wrong_destination");
}

#[test]
fn wrong_recipient_is_rejected() {
    let xml = signed_edit("s02_wrong_recipient.xml");
    assert!(xml.contains("Recipient=\"https://evil.example/acs\""));
    assert_eq!(reason(&xml), "wrong_recipient");
}

#[test]
fn missing_recipient_is_wrong_recipient() {
    let xml = signed_edit("s03_missing_recipient.xml");
    assert!(!xml.contains("Recipient="));
    assert_eq!(reason(&xml), "wrong_recipient");
}

#[test]
fn no_bearer_confirmation_is_refused() {
    let xml = signed_edit("s04_holder_of_key_only.xml");
    assert!(!xml.contains("cm:bearer") && xml.contains("cm:holder-of-key"));
    assert_eq!(reason(&xml), "unexpected_structure");
}

#[test]
fn wrong_audience_is_rejected() {
    let cfg = VerifierConfig {
        audience: Some("https://other.example/metadata".into()),
        ..config()
    };
    let e = Verifier::new(cfg)
        .verify_document(a01().as_bytes(), now())
        .unwrap_err();
    assert_eq!(e.reason(), "wrong_audience");
}

#[test]
fn missing_audience_restriction_is_wrong_audience() {
    let xml = signed_edit("s05_no_audience_restriction.xml");
    assert!(xml.contains("<saml2:Conditions ") && !xml.contains("AudienceRestriction"));
    assert_eq!(reason(&xml), "wrong_audience");
}

#[test]
fn advice_is_never_read() {
    let xml = signed_edit("s06_attributes_in_advice.xml");
    assert!(xml.contains("<a:Attribute Name=\"role\"><a:AttributeValue>admin"));
    let a = verify(&xml).unwrap();
    assert_eq!(a.attribute("role"), None);
}

/// Only the Assertion of a01 is signed: an AttributeStatement and a Subject
/// added to the unsigned Response around it verify (the digest does not see
/// them) and are never read.
#[test]
fn claims_outside_the_signed_assertion_are_not_read() {
    let outside = "<saml2p:Extensions><saml2:AttributeStatement xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"><saml2:Attribute Name=\"role\"><saml2:AttributeValue>admin</saml2:AttributeValue></saml2:Attribute><saml2:Attribute Name=\"groups\"><saml2:AttributeValue>Admins</saml2:AttributeValue></saml2:Attribute></saml2:AttributeStatement><saml2:Subject xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"><saml2:NameID>mallory@corp.example</saml2:NameID></saml2:Subject></saml2p:Extensions>";
    let xml = replace_once(
        &a01(),
        "<saml2p:Status>",
        &format!("{outside}<saml2p:Status>"),
    );
    let a = verify(&xml).unwrap();
    assert_eq!(a, verify(&a01()).unwrap());
    assert_eq!(a.attribute("role"), None);
    assert_eq!(a.groups(), ["Everyone", "Engineering"]);
    assert_eq!(a.name_id(), "alice@corp.example");
}

/// The same for WS-Fed: a SAML 1.1 AttributeStatement beside the token in
/// the unsigned RSTR is not read.
#[test]
fn claims_outside_the_signed_token_are_not_read() {
    let xml = independent("b01_wsfed_wst2005_rstr_saml11.xml");
    let outside = "<saml:AttributeStatement xmlns:saml=\"urn:oasis:names:tc:SAML:1.0:assertion\"><saml:Attribute AttributeName=\"role\" AttributeNamespace=\"urn:x\"><saml:AttributeValue>admin</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>";
    let edited = replace_once(
        &xml,
        "</t:RequestSecurityTokenResponse>",
        &format!("{outside}</t:RequestSecurityTokenResponse>"),
    );
    let v = Verifier::new(wsfed_config("urn:federation:MicrosoftOnline"));
    let a = v.verify_document(edited.as_bytes(), now()).unwrap();
    assert_eq!(a, v.verify_document(xml.as_bytes(), now()).unwrap());
    assert_eq!(a.attribute("role"), None);
}

// --- time -------------------------------------------------------------------

#[test]
fn expired_assertion_is_rejected() {
    let later = now() + Duration::from_secs(300);
    let e = Verifier::new(config())
        .verify_document(a01().as_bytes(), later)
        .unwrap_err();
    assert_eq!(e.reason(), "expired");
}

#[test]
fn not_yet_valid_assertion_is_rejected() {
    let earlier = now() - Duration::from_secs(61);
    let e = Verifier::new(config())
        .verify_document(a01().as_bytes(), earlier)
        .unwrap_err();
    assert_eq!(e.reason(), "not_yet_valid");
}

#[test]
fn skew_tolerates_a_slow_clock() {
    let cfg = VerifierConfig {
        skew: Duration::from_secs(60),
        ..config()
    };
    let earlier = now() - Duration::from_secs(100);
    Verifier::new(cfg)
        .verify_document(a01().as_bytes(), earlier)
        .unwrap();
}

#[test]
fn skew_tolerates_a_fast_clock() {
    let cfg = VerifierConfig {
        skew: Duration::from_secs(60),
        ..config()
    };
    let later = now() + Duration::from_secs(270);
    Verifier::new(cfg.clone())
        .verify_document(a01().as_bytes(), later)
        .unwrap();
    let too_late = now() + Duration::from_secs(361);
    let e = Verifier::new(cfg)
        .verify_document(a01().as_bytes(), too_late)
        .unwrap_err();
    assert_eq!(e.reason(), "expired");
}

#[test]
fn bearer_not_before_in_the_future_is_not_yet_valid() {
    let xml = signed_edit("s07_bearer_not_before_in_future.xml");
    assert!(xml.contains("<saml2:SubjectConfirmationData NotBefore=\"2026-01-01T00:03:00Z\" "));
    assert_eq!(reason(&xml), "not_yet_valid");
}

// --- replay -----------------------------------------------------------------

#[test]
fn replayed_assertion_is_rejected() {
    let cfg = VerifierConfig {
        replay_capacity: 100,
        ..config()
    };
    let v = Verifier::new(cfg);
    v.verify_document(a01().as_bytes(), now()).unwrap();
    let e = v.verify_document(a01().as_bytes(), now()).unwrap_err();
    assert_eq!(e.reason(), "replay");
    // A different assertion still passes.
    let other = signed_edit("s08_other_assertion_id.xml");
    let a = v.verify_document(other.as_bytes(), now()).unwrap();
    assert_eq!(a.id(), "id11111111111111111111111111111111");
}

#[test]
fn full_replay_cache_refuses_new_assertions_and_still_catches_replays() {
    let v = Verifier::new(VerifierConfig {
        replay_capacity: 1,
        ..config()
    });
    v.verify_document(a01().as_bytes(), now()).unwrap();
    let other = signed_edit("s08_other_assertion_id.xml");
    // Valid on its own, to a verifier with room.
    Verifier::new(config())
        .verify_document(other.as_bytes(), now())
        .unwrap();
    let e = v.verify_document(other.as_bytes(), now()).unwrap_err();
    assert_eq!(e.reason(), "replay_cache_full");
    assert_eq!(
        e.to_string(),
        "the replay cache holds its limit of 1 live assertion ids"
    );
    // The one remembered is still refused as a replay, not as "full".
    let e = v.verify_document(a01().as_bytes(), now()).unwrap_err();
    assert_eq!(e.reason(), "replay");
}

#[test]
fn verifier_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Verifier>();
    assert_send_sync::<VerifiedAssertion>();
}

// --- claims mapping ---------------------------------------------------------

fn attrs(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[test]
fn device_trust_defaults_map_okta_values() {
    let m = TrustMapping::default();
    for (v, want) in [
        ("TRUSTED", DeviceTrust::Trusted),
        ("NOT_TRUSTED", DeviceTrust::NotTrusted),
        ("UNKNOWN", DeviceTrust::Unknown),
        ("true", DeviceTrust::Trusted),
        ("false", DeviceTrust::NotTrusted),
        ("", DeviceTrust::Unknown),
        ("garbage", DeviceTrust::Unknown),
    ] {
        assert_eq!(
            m.device_trust(&attrs(&[("DeviceTrustSignal", &[v])])),
            want,
            "{v}"
        );
    }
}

#[test]
fn absent_device_trust_attribute_is_unknown() {
    let m = TrustMapping::default();
    assert_eq!(
        m.device_trust(&attrs(&[("email", &["a"])])),
        DeviceTrust::Unknown
    );
}

#[test]
fn conflicting_device_trust_values_are_unknown() {
    let m = TrustMapping::default();
    assert_eq!(
        m.device_trust(&attrs(&[(
            "DeviceTrustSignal",
            &["TRUSTED", "NOT_TRUSTED"]
        )])),
        DeviceTrust::Unknown
    );
}

#[test]
fn configured_trust_attribute_name_is_used() {
    let m = TrustMapping {
        attributes: vec!["DeviceManaged".into()],
        ..TrustMapping::default()
    };
    assert_eq!(
        m.device_trust(&attrs(&[("DeviceManaged", &["true"])])),
        DeviceTrust::Trusted
    );
}

#[test]
fn configured_groups_attribute_is_used() {
    let cfg = VerifierConfig {
        groups_attribute: "email".into(),
        ..config()
    };
    let a = Verifier::new(cfg)
        .verify_document(a01().as_bytes(), now())
        .unwrap();
    assert_eq!(a.groups(), ["alice@corp.example"]);
}

#[test]
fn every_reason_is_listed() {
    assert_eq!(AssertionError::REASONS.len(), 22);
    assert!(AssertionError::REASONS.contains(&AssertionError::Unsigned.reason()));
    assert!(AssertionError::REASONS.contains(&AssertionError::IssuedBeforeRevocation.reason()));
}

#[test]
fn the_issue_instant_is_the_signed_assertions() {
    let xml = a01();
    let a = Verifier::new(config())
        .verify_document(xml.as_bytes(), now())
        .unwrap();
    let assertion = &xml[xml.find("Assertion ").unwrap()..];
    let at = assertion.find("IssueInstant=\"").unwrap() + "IssueInstant=\"".len();
    let instant = &assertion[at..at + assertion[at..].find('"').unwrap()];
    assert_eq!(a.issue_instant(), parse_instant(instant).unwrap());
}

#[test]
fn error_messages_are_lowercase_and_short() {
    let long = "X".repeat(10_000);
    let e = AssertionError::WrongIssuer {
        found: error::short(&long),
    };
    assert!(e.to_string().len() < 200);
    assert!(AssertionError::EncryptedUnsupported
        .to_string()
        .chars()
        .all(|c| !c.is_uppercase()));
}

// --- ws-fed -----------------------------------------------------------------

fn wsfed_config(audience: &str) -> VerifierConfig {
    VerifierConfig {
        idp_entity_id: Some("http://adfs.corp.example/adfs/services/trust".into()),
        keys: keys("adfs_rsa2048.pem"),
        audience: Some(audience.into()),
        skew: Duration::ZERO,
        replay_capacity: 0,
        ..VerifierConfig::default()
    }
}

#[test]
fn wsfed_post_keeps_wctx() {
    let xml = independent("b01_wsfed_wst2005_rstr_saml11.xml");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("wa", "wsignin1.0")
        .append_pair("wresult", &xml)
        .append_pair("wctx", "rm=0&id=passive&ru=/")
        .finish();
    let d = Verifier::new(wsfed_config("urn:federation:MicrosoftOnline"))
        .verify_post(body.as_bytes(), now())
        .unwrap();
    assert_eq!(d.relay_state.as_deref(), Some("rm=0&id=passive&ru=/"));
    assert_eq!(d.assertion.protocol(), Protocol::WsFed);
    assert_eq!(
        d.assertion.issuer(),
        "http://adfs.corp.example/adfs/services/trust"
    );
    assert_eq!(d.assertion.id(), "_3fba6bc2-290d-9915-5e05-bbc78d60adb7");
}

#[test]
fn wsfed_wrong_wa_is_malformed() {
    let body = b"wa=wsignout1.0&wresult=%3Ca%2F%3E";
    let e = Verifier::new(wsfed_config("x"))
        .verify_post(body, now())
        .unwrap_err();
    assert_eq!(e.reason(), "malformed");
}

#[test]
fn wsfed_saml11_wrong_issuer_is_rejected() {
    let cfg = VerifierConfig {
        idp_entity_id: Some("http://other".into()),
        ..wsfed_config("urn:federation:MicrosoftOnline")
    };
    let e = Verifier::new(cfg)
        .verify_document(
            independent("b01_wsfed_wst2005_rstr_saml11.xml").as_bytes(),
            now(),
        )
        .unwrap_err();
    assert_eq!(e.reason(), "wrong_issuer");
}

#[test]
fn wsfed_unsigned_lifetime_is_ignored() {
    // The RSTR Lifetime is outside the signature: editing it changes nothing.
    let xml = replace_once(
        &independent("b01_wsfed_wst2005_rstr_saml11.xml"),
        "<wsu:Expires xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\">2026-01-01T00:05:00Z",
        "<wsu:Expires xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\">2099-01-01T00:05:00Z",
    );
    let later = now() + Duration::from_secs(3600);
    let e = Verifier::new(wsfed_config("urn:federation:MicrosoftOnline"))
        .verify_document(xml.as_bytes(), later)
        .unwrap_err();
    assert_eq!(e.reason(), "expired");
}

// --- attack fixtures, one test each -------------------------------------------

macro_rules! attack {
    ($name:ident, $file:literal, $($reason:literal)|+) => {
        #[test]
        fn $name() {
            let got = reason(&independent($file));
            assert!([$($reason),+].contains(&got), "{} gave {got}", $file);
        }
    };
}

attack!(
    tampered_device_trust_is_rejected,
    "r01_tampered_device_trust.xml",
    "bad_digest"
);
attack!(
    signature_removed_is_unsigned,
    "r02_unsigned.xml",
    "unsigned"
);
attack!(
    signature_exclusion_is_rejected,
    "r03_empty_signature_value.xml",
    "bad_signature"
);
attack!(
    xsw1_response_wrapped_in_signature_is_rejected,
    "r04_xsw1_response_wrapped_in_signature.xml",
    "multiple_assertions"
);
attack!(
    xsw2_response_sibling_is_rejected,
    "r05_xsw2_response_sibling_before_signature.xml",
    "multiple_assertions"
);
attack!(
    xsw3_evil_assertion_before_signed_is_rejected,
    "r06_xsw3_evil_assertion_before_signed.xml",
    "multiple_assertions"
);
attack!(
    xsw4_evil_assertion_wrapping_signed_is_rejected,
    "r07_xsw4_evil_assertion_wraps_signed.xml",
    "multiple_assertions"
);
attack!(
    xsw5_signature_moved_to_evil_copy_is_rejected,
    "r08_xsw5_signature_moved_to_evil_copy_appended.xml",
    "multiple_assertions"
);
attack!(
    xsw6_original_inside_signature_is_rejected,
    "r09_xsw6_original_inside_signature_of_evil.xml",
    "multiple_assertions"
);
attack!(
    xsw7_signed_assertion_in_extensions_is_rejected,
    "r10_xsw7_signed_assertion_in_extensions.xml",
    "multiple_assertions"
);
attack!(
    xsw8_original_in_ds_object_is_rejected,
    "r11_xsw8_original_in_ds_object.xml",
    "multiple_assertions"
);
attack!(
    xsw8_bogus_signature_object_is_rejected,
    "r11b_xsw8_signed_assertion_in_object_of_bogus_signature.xml",
    "multiple_assertions"
);
attack!(
    signed_assertion_in_advice_is_rejected,
    "r12_xsw_signed_assertion_in_advice.xml",
    "multiple_assertions"
);
attack!(
    signed_assertion_in_statusdetail_is_rejected,
    "r13_xsw_signed_assertion_in_statusdetail.xml",
    "multiple_assertions"
);
attack!(
    two_assertions_evil_second_is_rejected,
    "r14_two_assertions_evil_second.xml",
    "multiple_assertions"
);
attack!(
    duplicate_id_evil_first_is_rejected,
    "r15_duplicate_id_evil_first.xml",
    "multiple_assertions"
);
attack!(
    cert_confusion_embedded_attacker_cert_is_rejected,
    "r17_cert_confusion_embedded_attacker_cert.xml",
    "untrusted_key"
);
attack!(
    hmac_keyed_with_public_key_is_rejected,
    "r18_alg_confusion_hmac_with_public_key.xml",
    "weak_algorithm"
);
attack!(
    sha1_not_allowed_is_rejected,
    "r19_sha1_not_allowed.xml",
    "weak_algorithm"
);
attack!(
    billion_laughs_is_rejected,
    "r20_doctype_internal_entities.xml",
    "doctype"
);
attack!(
    xxe_is_rejected,
    "r21_doctype_external_entity_xxe.xml",
    "doctype"
);
attack!(expired_fixture_is_rejected, "r22_expired.xml", "expired");
attack!(
    not_yet_valid_fixture_is_rejected,
    "r23_not_yet_valid.xml",
    "not_yet_valid"
);
attack!(
    wrong_audience_fixture_is_rejected,
    "r24_wrong_audience.xml",
    "wrong_audience"
);
attack!(
    wrong_recipient_destination_fixture_is_rejected,
    "r25_wrong_recipient_destination.xml",
    "wrong_destination" | "wrong_recipient"
);
attack!(
    status_not_success_fixture_is_rejected,
    "r26_status_not_success.xml",
    "status_not_success"
);
attack!(
    signed_by_other_idp_key_is_rejected,
    "r27_signed_by_other_valid_idp_key.xml",
    "untrusted_key"
);
attack!(
    xpath_transform_fixture_is_rejected,
    "r28_xpath_transform_excludes_attributes.xml",
    "unexpected_structure"
);
attack!(
    two_references_is_rejected,
    "r29_two_references.xml",
    "unexpected_structure"
);
attack!(
    whitespace_change_fixture_is_rejected,
    "r30_whitespace_change_in_signed_assertion.xml",
    "bad_digest"
);

// --- signed edits: every case of the manifest ---------------------------------

fn toml_str<'v>(case: &'v toml::Value, key: &str) -> Option<&'v str> {
    case.get(key).and_then(toml::Value::as_str)
}

/// Every `.xml` of `tests/fixtures/signed-edits` is a case of its manifest,
/// and the verifier gives each case its verdict: the reason of a refusal,
/// the claims of an acceptance, under the case's own parameters.
#[test]
fn signed_edits_manifest_holds() {
    use std::collections::BTreeMap;
    let dir = fixtures().join("signed-edits");
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("manifest.toml")).unwrap()).unwrap();
    let cases = manifest["case"].as_array().unwrap();
    let mut listed: Vec<&str> = cases.iter().map(|c| toml_str(c, "file").unwrap()).collect();
    listed.sort_unstable();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    on_disk.sort_unstable();
    assert_eq!(listed, on_disk);
    assert_eq!(cases.len(), 10);

    for case in cases {
        let file = toml_str(case, "file").unwrap();
        let pem = std::fs::read(dir.join(toml_str(case, "idp_cert").unwrap())).unwrap();
        let cfg = VerifierConfig {
            keys: PinnedKey::from_pem(&pem).unwrap(),
            idp_entity_id: Some(OKTA.to_string()),
            audience: toml_str(case, "audience").map(str::to_string),
            acs_url: toml_str(case, "acs_url").map(str::to_string),
            skew: Duration::ZERO,
            replay_capacity: 0,
            ..VerifierConfig::default()
        };
        let at = parse_instant(&case["now"].as_datetime().unwrap().to_string()).unwrap();
        let xml = std::fs::read(dir.join(file)).unwrap();
        let got = Verifier::new(cfg).verify_document(&xml, at);
        match toml_str(case, "expect").unwrap() {
            "accept" => {
                let a = got.unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(Some(a.name_id()), toml_str(case, "name_id"), "{file}");
                assert_eq!(Some(a.id()), toml_str(case, "assertion_id"), "{file}");
                assert_eq!(
                    a.attribute("DeviceTrustSignal").map(|v| v[0].as_str()),
                    toml_str(case, "device_trust"),
                    "{file}"
                );
                let want: BTreeMap<&str, Vec<&str>> = case["attributes"]
                    .as_table()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| {
                        let vals = v.as_array().unwrap().iter().map(|x| x.as_str().unwrap());
                        (k.as_str(), vals.collect())
                    })
                    .collect();
                let have: BTreeMap<&str, Vec<&str>> = a
                    .attributes()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
                    .collect();
                assert_eq!(have, want, "{file}");
            }
            "reject" => {
                let e = got.err().unwrap_or_else(|| panic!("{file} was accepted"));
                assert_eq!(
                    Some(e.reason()),
                    toml_str(case, "verifier_reason"),
                    "{file}: {e}"
                );
            }
            other => panic!("{file}: expect {other:?}"),
        }
    }
}

// --- resource bounds ----------------------------------------------------------

#[test]
fn deep_nesting_is_malformed_not_a_stack_overflow() {
    let depth = 20_000;
    let xml = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    assert_eq!(reason(&xml), "malformed");
}

#[test]
fn attribute_flood_is_malformed() {
    let attrs: String = (0..5000).map(|i| format!(" a{i}=\"\"")).collect();
    let xml = format!("<r{attrs}/>");
    assert_eq!(reason(&xml), "malformed");
}

#[test]
fn xml_1_1_is_malformed() {
    let xml = replace_once(&a01(), "version=\"1.0\"", "version=\"1.1\"");
    assert_eq!(reason(&xml), "malformed");
}

#[test]
fn huge_skew_does_not_overflow() {
    let cfg = VerifierConfig {
        skew: Duration::from_secs(u64::MAX / 2),
        replay_capacity: 10,
        ..config()
    };
    Verifier::new(cfg)
        .verify_document(a01().as_bytes(), now())
        .unwrap();
}

#[test]
fn wsfed_document_in_samlresponse_field_is_refused() {
    let xml = independent("b01_wsfed_wst2005_rstr_saml11.xml");
    let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &b64)
        .finish();
    let e = Verifier::new(wsfed_config("urn:federation:MicrosoftOnline"))
        .verify_post(body.as_bytes(), now())
        .unwrap_err();
    assert_eq!(e.reason(), "unexpected_structure");
}

#[test]
fn duplicate_attribute_is_malformed() {
    let xml = replace_once(&a01(), "<saml2:Subject>", "<saml2:Subject a=\"1\" a=\"2\">");
    assert_eq!(reason(&xml), "malformed");
    let xml = replace_once(
        &a01(),
        "<saml2:Subject>",
        "<saml2:Subject xmlns:q=\"urn:a\" xmlns:q=\"urn:b\">",
    );
    assert_eq!(reason(&xml), "malformed");
    // Same expanded name through two prefixes.
    let xml = replace_once(
        &a01(),
        "<saml2:Subject>",
        "<saml2:Subject xmlns:p=\"urn:a\" xmlns:q=\"urn:a\" p:x=\"1\" q:x=\"2\">",
    );
    assert_eq!(reason(&xml), "malformed");
}

// --- resource limits --------------------------------------------------------

/// A long PrefixList multiplies c14n work per element before any key is
/// checked; it is refused as a structure, not canonicalized.
#[test]
fn long_inclusive_prefix_list_is_refused_before_digesting() {
    let list: Vec<String> = (0..17).map(|i| format!("p{i}")).collect();
    let xml = replace_once(
        &a01(),
        "PrefixList=\"xs\"",
        &format!("PrefixList=\"{}\"", list.join(" ")),
    );
    assert_eq!(reason(&xml), "unexpected_structure");
    // Sixteen distinct prefixes are within the limit (the digest then fails).
    let list: Vec<String> = (0..16).map(|i| format!("p{i}")).collect();
    let xml = replace_once(
        &a01(),
        "PrefixList=\"xs\"",
        &format!("PrefixList=\"{}\"", list.join(" ")),
    );
    assert_eq!(reason(&xml), "bad_digest");
}

#[test]
fn prefix_list_entries_must_be_prefixes() {
    for bad in ["a:b", "1x", "-x"] {
        let xml = replace_once(
            &a01(),
            "PrefixList=\"xs\"",
            &format!("PrefixList=\"{bad}\""),
        );
        assert_eq!(reason(&xml), "unexpected_structure", "{bad}");
    }
}

#[test]
fn thousands_of_namespace_declarations_are_malformed() {
    let decls: String = (0..300).map(|i| format!(" xmlns:q{i}=\"urn:q\"")).collect();
    let xml = replace_once(
        &a01(),
        "<saml2p:Status>",
        &format!("<saml2p:Status{decls}>"),
    );
    assert_eq!(reason(&xml), "malformed");
}

/// Without any NotOnOrAfter an assertion would never expire; even when it
/// is validly signed, it is refused.
#[test]
fn assertion_without_an_end_is_refused() {
    let xml = signed_edit("s09_no_not_on_or_after.xml");
    assert!(!xml.contains("NotOnOrAfter"));
    assert_eq!(reason(&xml), "unexpected_structure");
}
