//! Regenerates the TEST-ONLY certificates in `certs/`: a development CA, a
//! server certificate for `localhost` and `127.0.0.1` signed by it, and the
//! demo IdP's signing key pair. Run: `cargo run --example gen-certs -- certs`.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, RsaKeySize, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "certs".into()));
    std::fs::create_dir_all(&dir)?;
    let not_before = rcgen::date_time_ymd(2026, 1, 1);
    let not_after = rcgen::date_time_ymd(2036, 1, 1);
    let name = |cn: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "trustgate TEST ONLY");
        dn.push(DnType::CommonName, cn);
        dn
    };

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = name("trustgate development CA (TEST ONLY)");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut server =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    server.distinguished_name = name("localhost (TEST ONLY)");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = not_before;
    server.not_after = not_after;
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;

    // RSA-2048 / SHA-256, as Okta signs SAML responses.
    let idp_key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?;
    let mut idp = CertificateParams::new(Vec::<String>::new())?;
    idp.distinguished_name = name("trustgate demo IdP signing key (TEST ONLY)");
    idp.not_before = not_before;
    idp.not_after = not_after;
    let idp_cert = idp.self_signed(&idp_key)?;

    let write = |file: &str, text: String| std::fs::write(dir.join(file), text);
    write("dev-ca.pem", ca_cert.pem())?;
    write("dev-ca.key", ca_key.serialize_pem())?;
    write(
        "localhost.pem",
        format!("{}{}", server_cert.pem(), ca_cert.pem()),
    )?;
    write("localhost.key", server_key.serialize_pem())?;
    write("demo-idp.pem", idp_cert.pem())?;
    write("demo-idp.key", idp_key.serialize_pem())?;
    println!("wrote TEST-ONLY certificates to {}", dir.display());
    Ok(())
}
