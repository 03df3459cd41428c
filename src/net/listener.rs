//! The listening socket, with a backlog we choose.
//!
//! `TcpListener::bind` asks the kernel for a queue of 128 pending connections. A burst of new
//! clients (every pusher-js reconnecting after a restart, or a load test) overflows that queue
//! long before the server is busy, and the kernel then drops their SYNs: each dropped client
//! waits a full second before its retry. Measured with `clarion-bench idle --connections 19000
//! --concurrency 256`: 187–257 overflows per run and 8,900 connections/s instead of 13,600.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Binds `host:port` (the first resolved address that works) and listens with `backlog`.
pub async fn bind(host: &str, port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match listen(addr, backlog) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host}: no address to listen on"),
        )
    }))
}

fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std does: a restarted server can bind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 400 clients connect at once to a listener that never accepts: with the old backlog of
    /// 128 the kernel drops the SYNs beyond it and those connects hang for a second; with a
    /// backlog of 1024 every one completes at once.
    #[tokio::test]
    async fn a_burst_larger_than_128_is_queued_not_dropped() -> std::io::Result<()> {
        let l = bind("127.0.0.1", 0, 1024).await?;
        let addr = l.local_addr()?;
        let connects = (0..400).map(|_| {
            tokio::time::timeout(
                std::time::Duration::from_millis(700),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let results = futures_util::future::join_all(connects).await;
        let done = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(done, 400, "connections completed without a SYN retry");
        drop(l);
        Ok(())
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error() -> std::io::Result<()> {
        let l = bind("127.0.0.1", 0, 16).await?;
        let port = l.local_addr()?.port();
        assert!(bind("127.0.0.1", port, 16).await.is_err());
        Ok(())
    }
}
