//! The local demo: a demo app, a demo IdP that signs SAML 2.0 Responses with
//! the TEST-ONLY key in `certs/`, and a demo enrollment page. Each is an
//! ordinary HTTP server on loopback; the gateway reaches the app through the
//! normal proxy path and knows nothing of their insides.

pub mod app;
pub mod idp;
pub mod portal;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::answer::Body;

/// Serves `handler` on `listener` (HTTP/1.1 and h2c) until `stop` turns true.
pub async fn serve<F, Fut>(listener: TcpListener, mut stop: watch::Receiver<bool>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    while let Some((stream, _)) = crate::accept::next_connection(&listener, &mut stop).await {
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}
