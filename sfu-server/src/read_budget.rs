//! A cap on what a connection may send before it is admitted: a signaling socket that has
//! not joined may read only a few kilobytes, so it cannot make the server hold a
//! nearly-complete large frame for it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes a connection may still read; unlimited unless [`ReadBudget::limit_to`] armed it.
#[derive(Debug)]
pub struct ReadBudget {
    remaining: AtomicUsize,
}

impl Default for ReadBudget {
    fn default() -> Self {
        Self {
            remaining: AtomicUsize::new(usize::MAX),
        }
    }
}

impl ReadBudget {
    /// From now on the connection may read `bytes` more.
    pub fn limit_to(&self, bytes: usize) {
        self.remaining.store(bytes, Ordering::Relaxed);
    }

    /// No limit any more (the connection was admitted).
    pub fn lift(&self) {
        self.remaining.store(usize::MAX, Ordering::Relaxed);
    }

    /// Spend `n` bytes; `false` when they were over the budget.
    fn spend(&self, n: usize) -> bool {
        let remaining = self.remaining.load(Ordering::Relaxed);
        if remaining == usize::MAX {
            return true;
        }
        if n > remaining {
            return false;
        }
        self.remaining.store(remaining - n, Ordering::Relaxed);
        true
    }
}

/// The error of a read over the budget.
#[derive(Debug, thiserror::Error)]
#[error("more sent than a connection may before it is admitted")]
pub struct OverBudget;

/// A stream whose reads are charged to a [`ReadBudget`]; going over it fails the read.
/// `held` is whatever the connection holds while it lives (its places under the caps).
pub struct Budgeted<S, H> {
    inner: S,
    budget: Arc<ReadBudget>,
    _held: H,
}

impl<S, H> Budgeted<S, H> {
    /// `inner`, read within `budget`, holding `held` until dropped.
    pub fn new(inner: S, budget: Arc<ReadBudget>, held: H) -> Self {
        Self {
            inner,
            budget,
            _held: held,
        }
    }
}

impl<S: AsyncRead + Unpin, H: Unpin> AsyncRead for Budgeted<S, H> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && !this.budget.spend(buf.filled().len() - before)
        {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, OverBudget)));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin, H: Unpin> AsyncWrite for Budgeted<S, H> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_beyond_an_armed_budget_fail() {
        // Requirement: unlimited until armed; once armed, reading past the budget fails and
        // says so; lifted, reads go on.
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let budget = Arc::new(ReadBudget::default());
        let mut stream = Budgeted::new(server, budget.clone(), ());
        let mut buf = vec![0u8; 4096];
        client.write_all(&[1; 3000]).await.expect("write");
        assert_eq!(stream.read(&mut buf).await.expect("unlimited"), 3000);
        budget.limit_to(100);
        client.write_all(&[2; 60]).await.expect("write");
        assert_eq!(stream.read(&mut buf).await.expect("within"), 60);
        client.write_all(&[3; 60]).await.expect("write");
        let over = stream.read(&mut buf).await.expect_err("over the budget");
        assert!(
            over.get_ref().is_some_and(|e| e.is::<OverBudget>()),
            "{over}"
        );
        budget.lift();
        client.write_all(&[4; 2000]).await.expect("write");
        assert!(stream.read(&mut buf).await.expect("lifted") > 0);
    }
}
