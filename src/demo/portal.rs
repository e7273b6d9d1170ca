//! The demo IdP and enrollment portal, on one origin so they share a cookie:
//! `/idp/sso` lets the user pick a device state and signs a SAML 2.0
//! Response that auto-posts to the app's ACS URL through the gateway;
//! `/enroll/welcome` plays the Workspace ONE enrollment link and marks the
//! device enrolled, so the next assertion says TRUSTED; `/enroll/device`
//! can mark the device non-compliant, and then sends the gateway the real
//! UEM event notification (JSON, Basic auth) that Workspace ONE would.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::idp::{post_form, Grant, Signer};
use crate::answer::{escape_html, full, Body};
use crate::config::DemoConfig;

/// The portal's cookie that says the demo device is enrolled.
const ENROLLED_COOKIE: &str = "demo_device";

/// The client the portal calls the gateway with.
type GatewayClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Body,
>;

/// The demo IdP and enrollment portal.
pub struct Portal {
    cfg: Arc<DemoConfig>,
    signer: Signer,
    gateway: GatewayClient,
}

impl Portal {
    /// A portal signing with the configured demo IdP key.
    pub fn new(cfg: Arc<DemoConfig>) -> Result<Portal, super::idp::SignerError> {
        use rustls_pki_types::pem::PemObject;
        let signer = Signer::from_pem(&cfg.idp_key, &cfg.idp_cert)?;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(&cfg.gateway_ca).flatten() {
            let _ = roots.add(c);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let gateway =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Portal {
            cfg,
            signer,
            gateway,
        })
    }

    /// Sends the gateway the event Workspace ONE sends when a device turns
    /// non-compliant; the gateway's answer, in words.
    async fn send_noncompliant(&self, user: &str) -> String {
        let Some((name, password)) = &self.cfg.uem else {
            return "The gateway has no [uem] section, so it takes no events.".into();
        };
        use base64::Engine as _;
        let mut id = [0u8; 8];
        let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut id);
        let event = serde_json::json!({
            "EventId": u64::from_le_bytes(id) >> 12,
            "EventType": "Compliance Status Changed",
            "DeviceId": 1001,
            "DeviceFriendlyName": "Demo device",
            "EnrollmentUserName": user,
            "EnrollmentEmailAddress": user,
            "EnrollmentStatus": "Enrolled",
            "ComplianceStatus": "NonCompliant",
            "CompromisedStatus": "NotCompromised",
            "EventTime": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        });
        let origin = self
            .cfg
            .acs_url
            .splitn(4, '/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/");
        let credentials = base64::engine::general_purpose::STANDARD
            .encode([name.0.as_slice(), b":", password.0.as_slice()].concat());
        let req = Request::post(format!("{origin}{}", crate::service::uem::PATH))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Basic {credentials}"))
            .body(full(event.to_string()));
        let Ok(req) = req else {
            return "The event could not be built.".into();
        };
        match tokio::time::timeout(Duration::from_secs(5), self.gateway.request(req)).await {
            Ok(Ok(resp)) => {
                let status = resp.status();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|c| String::from_utf8_lossy(&c.to_bytes()).into_owned())
                    .unwrap_or_default();
                format!("The gateway answered {}: {}", status.as_u16(), body.trim())
            }
            Ok(Err(e)) => format!("The gateway could not be reached: {e}"),
            Err(_) => "The gateway did not answer within 5 s.".into(),
        }
    }

    /// Answers one portal request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let enrolled =
            crate::remember::seal::cookie(req.headers(), ENROLLED_COOKIE) == Some("enrolled");
        let query = |name: &str| {
            req.uri().query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            })
        };
        match (req.method().clone(), req.uri().path()) {
            (Method::GET, "/idp/sso") | (Method::GET, "/idp") => {
                let relay = query("RelayState").unwrap_or_default();
                self.signin_page(&relay, enrolled)
            }
            (Method::POST, "/idp/signin") => {
                let form = read_form(req).await;
                let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                let user = get("user")
                    .filter(|u| !u.is_empty())
                    .unwrap_or("alice@corp.example");
                let device = match get("device").unwrap_or("auto") {
                    "trusted" => "TRUSTED",
                    "not_trusted" => "NOT_TRUSTED",
                    "unknown" => "UNKNOWN",
                    _ if enrolled => "TRUSTED",
                    _ => "NOT_TRUSTED",
                };
                self.post_assertion(user, device, get("relay").unwrap_or(""))
            }
            (Method::GET, "/enroll/welcome") => {
                let app = query("app").unwrap_or_else(|| "the app".into());
                let platform = query("platform").unwrap_or_default();
                enroll_page(&app, &platform, enrolled)
            }
            (Method::POST, "/enroll/done") => {
                let mut r = page(
                    "Device enrolled",
                    &format!(
                        "<p id=\"enrolled\">This device is now managed (demo). Your next sign-in \
                         reports it as trusted.</p><p><a class=\"button\" id=\"open-app\" \
                         href=\"{}\">Open the app again</a></p>\
                         <p><a id=\"device-console\" href=\"/enroll/device\">The device in the \
                         Workspace ONE console</a></p>",
                        escape_html(&self.cfg.app_url)
                    ),
                );
                r.headers_mut().insert(
                    header::SET_COOKIE,
                    HeaderValue::from_static(
                        "demo_device=enrolled; Path=/; HttpOnly; SameSite=Lax",
                    ),
                );
                r
            }
            (Method::GET, "/enroll/device") => device_page(enrolled),
            (Method::POST, "/enroll/noncompliant") => {
                let form = read_form(req).await;
                let user = form
                    .iter()
                    .find(|(k, _)| k == "user")
                    .map(|(_, v)| v.trim().to_string())
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "alice@corp.example".into());
                let said = self.send_noncompliant(&user).await;
                let mut r = page(
                    "Device marked non-compliant",
                    &format!(
                        "<p>The demo device of <b>{}</b> is now non-compliant, and Workspace ONE's \
                         event notification went to the gateway.</p><p id=\"uem-result\">{}</p>\
                         <p>Its open session has ended: <a class=\"button\" id=\"open-app\" \
                         href=\"{}\">Open the app again</a></p>",
                        escape_html(&user),
                        escape_html(&said),
                        escape_html(&self.cfg.app_url)
                    ),
                );
                // No longer managed: the next assertion says NOT_TRUSTED.
                r.headers_mut().insert(
                    header::SET_COOKIE,
                    HeaderValue::from_static("demo_device=; Path=/; Max-Age=0"),
                );
                r
            }
            (Method::POST, "/enroll/reset") => {
                let mut r = page(
                    "Device reset",
                    "<p>The demo device is no longer enrolled.</p>",
                );
                r.headers_mut().insert(
                    header::SET_COOKIE,
                    HeaderValue::from_static("demo_device=; Path=/; Max-Age=0"),
                );
                r
            }
            _ => {
                let mut r = Response::new(full("not found\n"));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
        }
    }

    fn signin_page(&self, relay: &str, enrolled: bool) -> Response<Body> {
        let state = if enrolled { "enrolled" } else { "not enrolled" };
        page(
            "Demo IdP sign-in",
            &format!(
                "<p>This stands in for Okta. The demo device is <b id=\"device-state\">{state}</b>.</p>\
<form method=\"post\" action=\"/idp/signin\">\
<p><label>User <input name=\"user\" value=\"alice@corp.example\"></label></p>\
<fieldset><legend>Device trust to report</legend>\
<label><input type=\"radio\" name=\"device\" value=\"auto\" checked> from enrollment ({state})</label><br>\
<label><input type=\"radio\" name=\"device\" value=\"trusted\"> TRUSTED</label><br>\
<label><input type=\"radio\" name=\"device\" value=\"not_trusted\"> NOT_TRUSTED</label><br>\
<label><input type=\"radio\" name=\"device\" value=\"unknown\"> UNKNOWN</label></fieldset>\
<input type=\"hidden\" name=\"relay\" value=\"{}\">\
<p><button class=\"button\" id=\"signin\" type=\"submit\">Sign in</button></p></form>\
<form method=\"post\" action=\"/enroll/reset\"><button type=\"submit\">Reset the demo device</button></form>",
                escape_html(relay)
            ),
        )
    }

    fn post_assertion(&self, user: &str, device: &str, relay: &str) -> Response<Body> {
        let attributes = vec![
            ("email", vec![user.to_string()]),
            ("DeviceTrustSignal", vec![device.to_string()]),
            ("groups", vec!["Everyone".to_string()]),
        ];
        let grant = Grant {
            issuer: &self.cfg.idp_entity_id,
            audience: &self.cfg.sp_entity_id,
            acs_url: &self.cfg.acs_url,
            name_id: user,
            attributes: &attributes,
            now: SystemTime::now(),
            lifetime: Duration::from_secs(300),
        };
        let response = self.signer.response_b64(&grant);
        let mut fields = vec![("SAMLResponse", response.as_str())];
        if !relay.is_empty() {
            fields.push(("RelayState", relay));
        }
        let mut r = Response::new(full(post_form(&self.cfg.acs_url, &fields)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

async fn read_form(req: Request<Incoming>) -> Vec<(String, String)> {
    let body = http_body_util::Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    form_urlencoded::parse(&body).into_owned().collect()
}

/// The demo device's page at "Workspace ONE": its state, and the action
/// an admin (or a compliance engine) takes when it breaks policy.
fn device_page(enrolled: bool) -> Response<Body> {
    page(
        "Demo device (Workspace ONE console)",
        &format!(
            "<p>This stands in for the Workspace ONE console. The demo device is <b>{}</b>.</p>\
             <form method=\"post\" action=\"/enroll/noncompliant\">\
             <p><label>Enrollment user <input name=\"user\" value=\"alice@corp.example\"></label></p>\
             <p><button class=\"button\" id=\"noncompliant\" type=\"submit\">Mark this device \
             non-compliant</button></p></form>",
            if enrolled { "enrolled" } else { "not enrolled" }
        ),
    )
}

fn enroll_page(app: &str, platform: &str, enrolled: bool) -> Response<Body> {
    page(
        "Enroll this device",
        &format!(
            "<p>This stands in for the Workspace ONE enrollment link. <b>{}</b> needs a managed \
             device{}.</p><p>Device state: <b>{}</b></p>\
             <form method=\"post\" action=\"/enroll/done\"><button class=\"button\" id=\"enroll\" \
             type=\"submit\">Enroll this device</button></form>",
            escape_html(app),
            if platform.is_empty() {
                String::new()
            } else {
                format!(" ({})", escape_html(platform))
            },
            if enrolled { "enrolled" } else { "not enrolled" }
        ),
    )
}

fn page(title: &str, body: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;\
line-height:1.5}}.button{{padding:.6rem 1rem;background:#1a5fb4;color:#fff;border:0;\
border-radius:.4rem;text-decoration:none;display:inline-block}}</style></head>\
<body><h1>{t}</h1>{body}</body></html>\n",
        t = escape_html(title)
    );
    let mut r = Response::new(full(html));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}
