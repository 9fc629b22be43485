//! Serving a participant's two peer connections, as Janus and LiveKit give them (one it
//! publishes on, one it receives on), together with its signaling.

use std::future::Future;
use std::time::Instant;

use crate::endpoint::Endpoint;
use crate::peer_result::PeerResult;

/// Where the datagrams of the two connections are read into.
pub struct TwoConnections {
    publisher_buf: Vec<u8>,
    subscriber_buf: Vec<u8>,
}

/// Room for the largest datagram a connection receives.
const DATAGRAM_BYTES: usize = 2000;

impl Default for TwoConnections {
    fn default() -> Self {
        Self {
            publisher_buf: vec![0u8; DATAGRAM_BYTES],
            subscriber_buf: vec![0u8; DATAGRAM_BYTES],
        }
    }
}

impl TwoConnections {
    /// Drain both connections: when either next needs attention.
    pub fn drain(
        publisher: &mut Endpoint<'_>,
        subscriber: &mut Endpoint<'_>,
        result: &mut PeerResult,
    ) -> anyhow::Result<Instant> {
        Ok(publisher.drain(result)?.min(subscriber.drain(result)?))
    }

    /// Serve `publisher` and `subscriber` (datagrams, timeouts, the publisher's media) until
    /// `signal` yields a message, which is returned, or until `wake` (`None` then).
    pub async fn serve<M>(
        &mut self,
        publisher: &mut Endpoint<'_>,
        subscriber: &mut Endpoint<'_>,
        signal: impl Future<Output = anyhow::Result<M>>,
        wake: Instant,
        result: &mut PeerResult,
    ) -> anyhow::Result<Option<M>> {
        let wake = wake.min(publisher.next_media_at()).max(Instant::now());
        tokio::select! {
            message = signal => return message.map(Some),
            received = publisher.recv(&mut self.publisher_buf) => {
                let (n, source) = received?;
                publisher.receive(&self.publisher_buf[..n], source, result)?;
            }
            received = subscriber.recv(&mut self.subscriber_buf) => {
                let (n, source) = received?;
                subscriber.receive(&self.subscriber_buf[..n], source, result)?;
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                publisher.on_timeout(now, result)?;
                subscriber.on_timeout(now, result)?;
            }
        }
        Ok(None)
    }
}
