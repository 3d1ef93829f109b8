//! The HTTP server loop: accepting connections with limits that a client
//! on the network cannot wear down.
//!
//! * A connection must send a request's headers within `header_timeout`
//!   of being ready for one. The same timer closes an idle keep-alive
//!   connection (hyper starts it when it waits for the next request), so a
//!   client trickling headers or holding connections open idle is dropped.
//! * At most `max_connections` connections are open at once, WebSockets
//!   included (the slot is held for as long as the socket lives). Past it
//!   a new connection gets `503 Service Unavailable` with `Retry-After`
//!   and is closed, and the others are unaffected.
//! * Every request carries the peer's address (`ConnectInfo<SocketAddr>`).
//!
//! * With `--tls-cert`/`--tls-key` every connection is TLS (rustls), its
//!   handshake held to the same `header_timeout`; the certificate in use
//!   is taken per connection, so a reload (`src/tls.rs`) never drops one.
//!
//! HTTP/1.1 only: browsers use it for WebSockets, and a TLS-terminating
//! proxy in front (the other way to run it) speaks it to us.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

type Http1 = hyper::server::conn::http1::Builder;

/// Serves `router` until `shutdown` completes, then runs `before_drain`
/// (which closes the WebSockets) and waits up to 10 s for requests in
/// flight.
pub async fn serve<S, D>(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: S,
    before_drain: D,
) where
    S: Future<Output = ()>,
    D: Future<Output = ()>,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Each connection holds a receiver; shutdown tells them all, then
    // waits for every receiver to be dropped.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, mostly: wait, do not spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Signalling is small messages that must go out at once: without
        // TCP_NODELAY a 6 KB SDP can wait 40 ms for a delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(tcp, limits.max_connections));
            continue;
        };
        let router = router.clone();
        let builder = builder.clone();
        let stop = stop_rx.clone();
        match &tls {
            None => {
                tokio::spawn(connection(tcp, permit, peer, router, builder, stop));
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                let timeout = limits.header_timeout;
                tokio::spawn(async move {
                    // A client that opens a connection and never finishes
                    // its handshake holds a slot no longer than one that
                    // never sends its headers.
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            connection(stream, permit, peer, router, builder, stop).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    drop(stop_rx);
    before_drain.await;
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(10), stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("requests still running 10 s after shutdown; stopping anyway");
    }
}

/// Serves one connection (plain TCP or TLS) until it closes or the server
/// stops: then it finishes the request in flight and takes no more.
async fn connection<IO>(
    io: IO,
    slot: OwnedSemaphorePermit,
    peer: SocketAddr,
    router: Router,
    builder: Http1,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Counted { io, _slot: slot });
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { stop.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
    drop(stop);
}

/// Tells a connection over the cap why it is closed.
async fn refuse(mut tcp: TcpStream, cap: usize) {
    tracing::warn!(
        cap,
        "connection refused: the server is at its connection limit"
    );
    let body = format!(
        "MIU Link has {cap} connections open, its limit; try again in a few seconds \
         (IT: raise --max-connections if this is real use)\n"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = tcp.write_all(answer.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

/// A stream that holds one connection slot for as long as it lives
/// (through a WebSocket upgrade too).
struct Counted<IO> {
    io: IO,
    _slot: OwnedSemaphorePermit,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
