//! The benchmark upstream: a small hyper server (HTTP/1.1 and h2c) that
//! reads each request body to its end and answers 200 with a fixed body of
//! the configured size. The gateway, nginx and the direct baseline all talk
//! to it, so it is the one constant of a comparison.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpSocket;

/// Binds `addr` and serves until the process ends; returns the bound address.
pub async fn start(addr: SocketAddr, response_size: usize) -> std::io::Result<SocketAddr> {
    // A deep backlog: a proxy facing thousands of clients opens upstream
    // connections in bursts, and an overflowing accept queue would be
    // charged to the proxy.
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    let bound = listener.local_addr()?;
    let body = Bytes::from(vec![b'x'; response_size]);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let body = body.clone();
                    async move {
                        // Drain the request so a POST costs what it costs.
                        let _ = req.into_body().collect().await;
                        let mut resp = Response::new(Full::new(body));
                        resp.headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(bound)
}
