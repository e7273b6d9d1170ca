//! The demo IdP and enrollment portal, on one origin so they share a cookie:
//! `/idp/sso` lets the user pick a device state and signs a SAML 2.0
//! Response that auto-posts to the app's ACS URL through the gateway;
//! `/enroll/welcome` plays the Workspace ONE enrollment link and marks the
//! device enrolled, so the next assertion says TRUSTED.

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

/// The demo IdP and enrollment portal.
pub struct Portal {
    cfg: Arc<DemoConfig>,
    signer: Signer,
}

impl Portal {
    /// A portal signing with the configured demo IdP key.
    pub fn new(cfg: Arc<DemoConfig>) -> Result<Portal, super::idp::SignerError> {
        let signer = Signer::from_pem(&cfg.idp_key, &cfg.idp_cert)?;
        Ok(Portal { cfg, signer })
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
                         href=\"{}\">Open the app again</a></p>",
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
