//! [`Lenient`]: a connection that reads raw UTF-8 in a request line as what it stands for.
//!
//! `curl 'http://host/api/v1/products?q=café'` sends the `é` as two raw bytes, where a
//! browser would send `%C3%A9`. actix-http refuses such a request line before any middleware
//! runs, with a bare 400 and an empty body: no problem document, no request id, no security
//! headers. [`Lenient`] percent-encodes the bytes a URI may not hold (non-ASCII, and
//! `"<>\^`{|}`), as a browser does, in the request line of a request the parser would refuse
//! for them, and nowhere else: it runs actix-http's own request decoder over a copy of the
//! bytes read, so it knows exactly where each request line starts (never inside a body), and
//! leaves every request the decoder accepts untouched. The request then takes the ordinary
//! way through the application.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use actix_codec::Decoder;
use actix_http::{ServiceConfig, h1::Codec};
use actix_web::web::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest request head held back while it is incomplete; past it the bytes go on
/// as they are (and the parser answers 431).
const MAX_HEAD: usize = 64 * 1024;

/// A connection whose request lines are read leniently (see the module documentation).
#[derive(Debug)]
pub struct Lenient<T> {
    io: T,
    /// actix-http's decoder, fed the same bytes as the server's.
    decoder: Codec,
    /// Read, not yet judged; `probe` is the decoder's copy of it.
    pending: BytesMut,
    probe: BytesMut,
    /// Judged, for the server to read.
    ready: BytesMut,
    /// Nothing more to judge: a request line that stays malformed, an upgrade, end of input.
    through: bool,
}

impl<T> Lenient<T> {
    /// `io` read with the decoder configured by `config` (one per worker: it keeps a timer).
    pub fn new(io: T, config: &ServiceConfig) -> Self {
        Self {
            io,
            decoder: Codec::new(config.clone()),
            pending: BytesMut::new(),
            probe: BytesMut::new(),
            ready: BytesMut::new(),
            through: false,
        }
    }

    /// Passes on what the decoder accepts; mends a refused request line once.
    fn judge(&mut self) {
        let mut mended = false;
        loop {
            match self.decoder.decode(&mut self.probe) {
                Ok(Some(_)) => {
                    let accepted = self.pending.len() - self.probe.len();
                    self.ready
                        .extend_from_slice(&self.pending.split_to(accepted));
                    mended = false;
                }
                Ok(None) => {
                    if self.pending.len() > MAX_HEAD {
                        self.give_up();
                    }
                    return;
                }
                // The refused head starts the pending bytes; its request line may be mended
                // once it is complete.
                Err(_) if !mended => {
                    if !self.pending.contains(&b'\n') && self.pending.len() <= MAX_HEAD {
                        return;
                    }
                    let Some(mended_line) = mend_request_line(&self.pending) else {
                        self.give_up();
                        return;
                    };
                    self.pending = mended_line;
                    self.probe = self.pending.clone();
                    mended = true;
                }
                Err(_) => {
                    self.give_up();
                    return;
                }
            }
        }
    }

    /// Feeds freshly read bytes to the decoder while nothing is held back; returns how many
    /// of them, from the start, it accepted (whole requests, or body bytes).
    fn accept_fresh(&mut self, fresh: &[u8]) -> usize {
        self.probe.extend_from_slice(fresh);
        let mut accepted = 0;
        while let Ok(Some(_)) = self.decoder.decode(&mut self.probe) {
            accepted = fresh.len() - self.probe.len();
        }
        accepted
    }

    fn give_up(&mut self) {
        self.through = true;
        self.probe.clear();
        let rest = self.pending.split();
        self.ready.extend_from_slice(&rest);
    }
}

/// The pending bytes with the request line's target percent-encoded where a URI may not
/// hold a byte; `None` when that changes nothing (the line is malformed otherwise).
fn mend_request_line(pending: &[u8]) -> Option<BytesMut> {
    let end = pending.iter().position(|b| *b == b'\n')?;
    let line = &pending[..end];
    let start = line.iter().position(|b| *b == b' ')? + 1;
    let stop = start + line[start..].iter().rposition(|b| *b == b' ')?;
    let needs = |b: u8| b >= 0x80 || br#""<>\^`{|}"#.contains(&b);
    if !line[start..stop].iter().any(|b| needs(*b)) {
        return None;
    }
    let mut mended = BytesMut::with_capacity(pending.len() + 64);
    mended.extend_from_slice(&pending[..start]);
    for &b in &line[start..stop] {
        if needs(b) {
            mended.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            mended.extend_from_slice(&[b]);
        }
    }
    mended.extend_from_slice(&pending[stop..]);
    Some(mended)
}

impl<T: AsyncRead + Unpin> AsyncRead for Lenient<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.through && this.pending.is_empty() {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            if this.pending.is_empty() {
                // Nothing held back: read straight into the server's buffer and take back
                // only what the decoder has not accepted yet (an incomplete or refused head).
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                let accepted = this.accept_fresh(&buf.filled()[before..]);
                let read = buf.filled().len() - before;
                if accepted == read {
                    return Poll::Ready(Ok(()));
                }
                this.pending
                    .extend_from_slice(&buf.filled()[before + accepted..]);
                buf.set_filled(before + accepted);
                this.judge();
                if accepted > 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let mut chunk = [0_u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            let bytes = read.filled();
            if bytes.is_empty() {
                // End of input: whatever is held back goes on as it is.
                this.give_up();
                if this.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.pending.extend_from_slice(bytes);
            this.probe.extend_from_slice(bytes);
            this.judge();
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Lenient<T> {
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// What the server reads when a client sends `chunks`, one write each.
    async fn server_reads(chunks: &[&[u8]]) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        for chunk in chunks {
            client.write_all(chunk).await.unwrap();
        }
        drop(client);
        let mut read = Vec::new();
        Lenient::new(server, &ServiceConfig::default())
            .read_to_end(&mut read)
            .await
            .unwrap();
        read
    }

    /// What the server reads when a client sends `chunks` one at a time, pausing between
    /// them, while the server reads: heads and bodies arrive in pieces.
    async fn server_reads_trickled(chunks: Vec<Vec<u8>>) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for chunk in chunks {
                client.write_all(&chunk).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        let mut read = Vec::new();
        Lenient::new(server, &ServiceConfig::default())
            .read_to_end(&mut read)
            .await
            .unwrap();
        writer.await.unwrap();
        read
    }

    #[actix_web::test]
    async fn requests_arriving_in_pieces_reach_the_server_whole_and_mended() {
        let body = "x".repeat(300) + "GET /caf\u{e9} HTTP/1.1\r\n";
        let post = format!(
            "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let tail = b"GET /b/caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\n\r\n";
        let mut sent = post.clone().into_bytes();
        sent.extend_from_slice(tail);
        let chunks = sent.chunks(7).map(<[u8]>::to_vec).collect();
        let mut expected = post.into_bytes();
        expected.extend_from_slice(
            b"GET /b/caf%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\n\r\n",
        );
        assert_eq!(server_reads_trickled(chunks).await, expected);
    }

    #[actix_web::test]
    async fn raw_utf8_in_a_request_line_is_percent_encoded() {
        let read = server_reads(&[b"GET /p/caf\xc3\xa9?q=\"x\" HTTP/1.1\r\nHost: a\r\n\r\n"]).await;
        assert_eq!(
            read,
            b"GET /p/caf%C3%A9?q=%22x%22 HTTP/1.1\r\nHost: a\r\n\r\n"
        );
    }

    #[actix_web::test]
    async fn bodies_and_accepted_requests_are_left_alone_whatever_they_hold() {
        let body = "{\"name\": \"caf\u{e9}\"}\r\nGET /caf\u{e9} HTTP/1.1\r\n";
        let first = format!(
            "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let second = b"GET /b/caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n";
        // Split mid-head and mid-body: the decoder sees the same bytes either way.
        let (a, b) = first.as_bytes().split_at(20);
        let (b, c) = b.split_at(b.len() - 10);
        let read = server_reads(&[a, b, c, &second[..7], &second[7..]]).await;
        let mut expected = first.into_bytes();
        expected.extend_from_slice(b"GET /b/caf%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(read, expected);
    }

    #[actix_web::test]
    async fn a_request_line_malformed_otherwise_goes_on_as_it_is() {
        let bad = b"GET /x HTTP/9\r\nHost: a\r\n\r\n";
        assert_eq!(server_reads(&[bad]).await, bad);
        let incomplete = b"GET /x HTTP/1.1\r\nHost:";
        assert_eq!(server_reads(&[incomplete]).await, incomplete);
    }
}
