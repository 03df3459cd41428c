//! `GET /metrics` on its own port (`metrics_port`), never on the public one.

use std::sync::Arc;

use hyper::service::service_fn;

use super::response;
use crate::state::State;

/// Serves `GET /metrics` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    let res = if req.uri().path() == "/metrics" {
                        let text = state.metrics.render(&state.snapshot());
                        let mut r = hyper::Response::new(response::Body::from(text));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        r
                    } else {
                        response::error(hyper::StatusCode::NOT_FOUND, "Not found: use /metrics")
                    };
                    Ok::<_, std::convert::Infallible>(res)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
