//! The demo app: a page at `/` and `/headers`, which echoes the request
//! headers it received as JSON. It is an
//! ordinary upstream; the gateway reaches it through the normal proxy path.

use std::collections::BTreeMap;
use std::convert::Infallible;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::answer::{escape_html, full, Body};

/// Serves the demo app until `stop` turns true.
pub async fn serve(listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(handle(req)) });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn handle(req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/headers" => {
            let mut map: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (name, value) in req.headers() {
                map.entry(name.as_str())
                    .or_default()
                    .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
            let body = serde_json::to_vec_pretty(&map).expect("strings serialize");
            let mut r = Response::new(full(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        "/" => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let html = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Demo app</title>\
</head><body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto\">\
<h1>Demo app</h1><p>You reached the app behind trustgate (host {}).</p>\
<p><a href=\"/headers\">See the headers the app received</a></p></body></html>\n",
                escape_html(host)
            );
            let mut r = Response::new(full(html));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
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
