//! A participant's signaling WebSocket: its type, how long joining may take, and the
//! address its media socket binds to.

use std::net::IpAddr;
use std::time::Duration;

use tokio_tungstenite::MaybeTlsStream;

use crate::scenario::Scenario;

/// Give up joining after this long.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// A signaling connection.
pub type Signaling = tokio_tungstenite::WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The address a participant's media socket binds to: the scenario's `media_ip`, else the
/// local address of its signaling connection `ws`.
pub fn media_ip(scenario: &Scenario, ws: &Signaling) -> anyhow::Result<IpAddr> {
    let local = match ws.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr()?.ip(),
        _ => anyhow::bail!("only ws:// is supported"),
    };
    Ok(scenario.media_ip.unwrap_or(local))
}
