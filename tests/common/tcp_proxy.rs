//! A TCP proxy on a free port that a test can cut (every connection dropped, nothing accepted)
//! and restore, to make a real server look unreachable without stopping it; or that holds
//! every byte sent to the server for a while, to make a real server look far away.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct TcpProxy {
    pub port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// How long each byte to the server is held.
    delay: Duration,
    /// Only on connections that have sent a SUBSCRIBE (a pub/sub connection), from then on.
    subscribers_only: bool,
}

impl TcpProxy {
    /// A proxy to `target` (`host:port`), not yet listening when `listening` is false.
    pub async fn start(target: &str, listening: bool) -> TcpProxy {
        let p = TcpProxy {
            port: super::redis::free_port(),
            target: target.to_string(),
            tasks: Arc::default(),
            delay: Duration::ZERO,
            subscribers_only: false,
        };
        if listening {
            p.restore().await;
        }
        p
    }

    /// A listening proxy to `target` that delivers what a Redis pub/sub connection sends
    /// `delay` late, from its first SUBSCRIBE on (in order; answers come back at once; other
    /// connections pass at once): a bus subscription that takes its time.
    pub async fn slow_subscriptions(target: &str, delay: Duration) -> TcpProxy {
        let p = TcpProxy {
            port: super::redis::free_port(),
            target: target.to_string(),
            tasks: Arc::default(),
            delay,
            subscribers_only: true,
        };
        p.restore().await;
        p
    }

    /// Listens again (on the same port).
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy listens");
        let (target, tasks, delay) = (self.target.clone(), self.tasks.clone(), self.delay);
        let subscribers_only = self.subscribers_only;
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        if delay.is_zero() {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        } else {
                            pipe_late(client, server, delay, subscribers_only).await;
                        }
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

/// Copies client → server `delay` late (each chunk stamped when read, so delays do not add
/// up; with `subscribers_only`, from the first chunk that holds a SUBSCRIBE) and server →
/// client at once.
async fn pipe_late(client: TcpStream, server: TcpStream, delay: Duration, subscribers_only: bool) {
    let (mut client_in, mut client_out) = client.into_split();
    let (mut server_in, mut server_out) = server.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut slow = !subscribers_only;
        while let Ok(n) = client_in.read(&mut buf).await {
            let chunk = buf[..n].to_vec();
            slow = slow || chunk.windows(9).any(|w| w == b"SUBSCRIBE");
            let wait = if slow { delay } else { Duration::ZERO };
            if n == 0
                || tx
                    .send((tokio::time::Instant::now() + wait, chunk))
                    .is_err()
            {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if server_out.write_all(&bytes).await.is_err() {
                break;
            }
        }
    };
    let back = tokio::io::copy(&mut server_in, &mut client_out);
    tokio::select! {
        _ = async { tokio::join!(read, write) } => {}
        _ = back => {}
    }
}
