//! A TCP proxy on a free port that a test can cut (every connection dropped, nothing accepted)
//! and restore, to make a real server look unreachable without stopping it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct TcpProxy {
    pub port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl TcpProxy {
    /// A proxy to `target` (`host:port`), not yet listening when `listening` is false.
    pub async fn start(target: &str, listening: bool) -> TcpProxy {
        let p = TcpProxy {
            port: super::redis::free_port(),
            target: target.to_string(),
            tasks: Arc::default(),
        };
        if listening {
            p.restore().await;
        }
        p
    }

    /// Listens again (on the same port).
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy listens");
        let (target, tasks) = (self.target.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().expect("lock").push(pipe);
            }
        });
        self.tasks.lock().expect("lock").push(accept);
    }

    /// Stops accepting and drops every open connection.
    pub fn cut(&self) {
        for t in self.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
