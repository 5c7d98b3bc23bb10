//! Telling a Raft peer's connection from a client's by its first bytes, and giving those bytes
//! back to the HTTP server that reads the connection after.
//!
//! A peer's Raft RPCs are HTTP/1.1 `POST /raft/…` requests on pooled keep-alive connections
//! (`drover_raft::Transport` never speaks HTTP/2), so a connection whose first request line
//! starts so carries Raft and nothing else. That is read once per connection, before hyper
//! sees it: over TLS the bytes are the decrypted ones, so one rule serves both listeners.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// How a Raft RPC's request line starts.
const RAFT_REQUEST: &[u8] = b"POST /raft/";

/// Reads until the first bytes say whether the connection's first request is a Raft RPC (or
/// the client stops sending). Returns the bytes read, for [`Prefixed`], and the verdict.
pub async fn first_request_is_raft<Io: AsyncRead + Unpin>(
    io: &mut Io,
) -> io::Result<(Vec<u8>, bool)> {
    let mut read = Vec::with_capacity(1024);
    loop {
        let undecided = read.len() < RAFT_REQUEST.len() && RAFT_REQUEST.starts_with(&read);
        if !undecided {
            let raft = read.starts_with(RAFT_REQUEST);
            return Ok((read, raft));
        }
        // Whatever the client sent in one segment, often its whole request.
        if io.read_buf(&mut read).await? == 0 {
            return Ok((read, false));
        }
    }
}

/// A connection whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub struct Prefixed<Io> {
    prefix: Vec<u8>,
    at: usize,
    io: Io,
}

impl<Io> Prefixed<Io> {
    pub fn new(prefix: Vec<u8>, io: Io) -> Self {
        Prefixed { prefix, at: 0, io }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Prefixed<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = &this.prefix[this.at..];
        if rest.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.at += n;
        if this.at == this.prefix.len() {
            this.prefix = Vec::new();
            this.at = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Prefixed<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Sends `chunks` one write at a time, as a client's segments arrive.
    async fn sniffed(chunks: &[&[u8]]) -> (bool, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(64);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let sender = tokio::spawn(async move {
            for c in chunks {
                client.write_all(&c).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let (prefix, raft) = first_request_is_raft(&mut server).await.unwrap();
        sender.await.unwrap();
        let mut all = Vec::new();
        Prefixed::new(prefix, server)
            .read_to_end(&mut all)
            .await
            .unwrap();
        (raft, all)
    }

    #[tokio::test]
    async fn a_raft_request_is_told_from_an_api_one_and_nothing_read_is_lost() {
        let raft = b"POST /raft/append HTTP/1.1\r\n\r\n";
        assert_eq!(sniffed(&[raft]).await, (true, raft.to_vec()));
        // Split inside the prefix, a byte at a time at first.
        assert_eq!(
            sniffed(&[b"P", b"OS", b"T /ra", b"ft/vote HTTP/1.1\r\n\r\n"]).await,
            (true, b"POST /raft/vote HTTP/1.1\r\n\r\n".to_vec())
        );
        let api = b"POST /v1/workers/w1/heartbeat HTTP/1.1\r\n\r\n";
        assert_eq!(sniffed(&[api]).await, (false, api.to_vec()));
        // Decided at the first byte that differs; what follows is read by hyper, not here.
        assert_eq!(
            sniffed(&[b"GET /", b"raft/append"]).await,
            (false, b"GET /raft/append".to_vec())
        );
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert_eq!(sniffed(&[h2]).await, (false, h2.to_vec()));
        // A client that closes early.
        assert_eq!(sniffed(&[b"POST /ra"]).await, (false, b"POST /ra".to_vec()));
    }
}
