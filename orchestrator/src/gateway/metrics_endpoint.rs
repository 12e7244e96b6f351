//! `GET /metrics`: the gateway's registry in the Prometheus text format, on a listener of its own
//! (`metrics_addr`, loopback by default), as Traefik serves its metrics on a separate entrypoint.
//! The autoscaler of a cluster, a Prometheus server or `make bench` scrape it.
//!
//! It deliberately serves nothing else and is not on the apps' port: a student's app must never be
//! able to shadow or read it through the gateway's host routing.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::registry::Registry;
use crate::metrics::CONTENT_TYPE;

/// Serves `/metrics` until `shutdown` turns true.
pub async fn serve_metrics(listener: TcpListener, registry: Arc<Registry>, mut shutdown: watch::Receiver<bool>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listening at /metrics");
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(answer(&registry, request.method(), request.uri().path())) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn answer(registry: &Registry, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (method, path) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, CONTENT_TYPE, registry.render()),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "use GET\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "only /metrics is served here\n".to_owned()),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a static status and header make a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_metrics() {
        let registry = Registry::new();
        let _open = registry.open_connection();
        let ok = answer(&registry, &Method::GET, "/metrics");
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(answer(&registry, &Method::GET, "/").status(), StatusCode::NOT_FOUND);
        assert_eq!(answer(&registry, &Method::POST, "/metrics").status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
