//! A real local HTTP server that records webhook requests and answers as told.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug)]
pub struct Hook {
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Hook {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("webhook body is JSON")
    }

    pub fn events(&self) -> Vec<Value> {
        self.json()["events"]
            .as_array()
            .expect("events array")
            .clone()
    }
}

/// What the receiver answers: a status per request in order (then 200), or a hang.
#[derive(Clone, Copy)]
pub enum Answer {
    Status(u16),
    Hang,
}

pub struct Receiver {
    pub addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Hook>,
}

impl Receiver {
    pub async fn start(answers: Vec<Answer>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let answers = answers.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let tx = tx.clone();
                            let answers = answers.clone();
                            async move {
                                let headers = req.headers().clone();
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let _ = tx.send(Hook {
                                    headers,
                                    body: String::from_utf8_lossy(&body).into_owned(),
                                });
                                let answer = answers
                                    .lock()
                                    .expect("lock")
                                    .pop_front()
                                    .unwrap_or(Answer::Status(200));
                                let status = match answer {
                                    Answer::Status(s) => s,
                                    Answer::Hang => {
                                        tokio::time::sleep(Duration::from_secs(30)).await;
                                        200
                                    }
                                };
                                let mut res = hyper::Response::new(Full::new(
                                    bytes::Bytes::from_static(b"{}"),
                                ));
                                *res.status_mut() =
                                    hyper::StatusCode::from_u16(status).expect("status");
                                Ok::<_, std::convert::Infallible>(res)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, rx }
    }

    pub fn url(&self) -> String {
        format!("http://{}/pusher/webhooks", self.addr)
    }

    pub async fn next(&mut self) -> Hook {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("a webhook in time")
            .expect("receiver alive")
    }

    pub async fn nothing(&mut self, wait: Duration) {
        if let Ok(Some(h)) = tokio::time::timeout(wait, self.rx.recv()).await {
            panic!("unexpected webhook {}", h.body);
        }
    }

    /// The `field` (a string) of the first event of each of the next `n` webhooks, sorted: for
    /// webhooks that are sent concurrently, in no set order.
    pub async fn next_sorted(&mut self, n: usize, field: &str) -> Vec<String> {
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            got.push(
                self.next().await.events()[0][field]
                    .as_str()
                    .unwrap_or_else(|| panic!("{field} of the first event is a string"))
                    .to_string(),
            );
        }
        got.sort();
        got
    }

    /// The next webhook whose first event has `name`.
    pub async fn next_named(&mut self, name: &str) -> Hook {
        loop {
            let h = self.next().await;
            if h.events()[0]["name"] == name {
                return h;
            }
        }
    }
}
