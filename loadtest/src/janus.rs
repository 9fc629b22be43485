//! The Janus target: the same synthetic participant, speaking the Janus WebSocket API
//! (subprotocol `janus-protocol`) to Janus' VideoRoom plugin, so one scenario loads both
//! servers. Janus gives each participant a publisher peer connection and a (multistream)
//! subscriber peer connection; every participant joins as a publisher to learn the room's
//! feeds, and the receive-only ones never publish.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use signaling::{MediaKind as TrackKind, Quality, Track};
use str0m::Candidate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Mid;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::connection::{JOIN_TIMEOUT, Signaling, media_ip};
use crate::endpoint::Endpoint;
use crate::peer_result::PeerResult;
use crate::progress::{Progress, add};
use crate::scenario::{PeerPlan, Scenario};
use crate::two_connections::TwoConnections;

/// Janus ends sessions idle for its `session_timeout` (60 s in `loadtest/janus`).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(25);
/// The VideoRoom plugin's error code for "room already exists".
const ROOM_EXISTS: i64 = 427;
/// The plugin every handle attaches to.
const VIDEOROOM: &str = "janus.plugin.videoroom";

/// A Janus API connection with one session.
struct JanusApi {
    ws: Signaling,
    session: u64,
    next_transaction: u64,
    /// Messages that arrived while waiting for a reply, to handle afterwards.
    backlog: VecDeque<Value>,
}

impl JanusApi {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let (ws, _) = tokio::time::timeout(JOIN_TIMEOUT, connect_async(request))
            .await
            .map_err(|_| anyhow::anyhow!("WebSocket connect to {url} timed out"))??;
        let mut api = Self {
            ws,
            session: 0,
            next_transaction: 0,
            backlog: VecDeque::new(),
        };
        let created = api.request(json!({"janus": "create"})).await?;
        api.session = created["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("Janus gave no session id: {created}"))?;
        Ok(api)
    }

    /// Send `message` in this session with a fresh transaction; returns the transaction.
    async fn send(&mut self, mut message: Value) -> anyhow::Result<String> {
        self.next_transaction += 1;
        let transaction = format!("t{}", self.next_transaction);
        message["transaction"] = json!(transaction);
        if self.session != 0 {
            message["session_id"] = json!(self.session);
        }
        self.ws.send(Message::text(message.to_string())).await?;
        Ok(transaction)
    }

    /// Send `message` and wait for its reply (`success`, `error` or the plugin's `event`),
    /// keeping every other message in the backlog.
    async fn request(&mut self, message: Value) -> anyhow::Result<Value> {
        let transaction = self.send(message).await?;
        let deadline = Instant::now() + JOIN_TIMEOUT;
        loop {
            let reply = tokio::time::timeout_at(deadline.into(), self.next_message())
                .await
                .map_err(|_| anyhow::anyhow!("no reply from Janus to {transaction}"))??;
            let ours = reply["transaction"].as_str() == Some(transaction.as_str());
            match reply["janus"].as_str() {
                Some("ack") if ours => {}
                Some("error") if ours => anyhow::bail!("Janus refused: {}", reply["error"]),
                _ if ours => return Ok(reply),
                _ => self.backlog.push_back(reply),
            }
        }
    }

    /// Attach a VideoRoom handle; returns its id.
    async fn attach(&mut self) -> anyhow::Result<u64> {
        let reply = self
            .request(json!({"janus": "attach", "plugin": VIDEOROOM}))
            .await?;
        reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("Janus gave no handle id: {reply}"))
    }

    /// The next message from Janus.
    async fn next_message(&mut self) -> anyhow::Result<Value> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
                Some(Ok(Message::Close(_))) | None => anyhow::bail!("Janus closed the connection"),
                Some(Ok(_)) => {}
                Some(Err(e)) => anyhow::bail!("Janus connection failed: {e}"),
            }
        }
    }
}

/// A VideoRoom request body on `handle`, optionally with a JSEP.
fn plugin_message(handle: u64, body: Value, jsep: Option<(&str, String)>) -> Value {
    let mut message = json!({"janus": "message", "handle_id": handle, "body": body});
    if let Some((kind, sdp)) = jsep {
        message["jsep"] = json!({"type": kind, "sdp": sdp});
    }
    message
}

/// "No more candidates" for `handle` (ours are all in the SDP).
fn candidates_done(handle: u64) -> Value {
    json!({"janus": "trickle", "handle_id": handle, "candidate": {"completed": true}})
}

/// The Janus room number for a scenario room name (FNV-1a, kept within JSON's safe integers).
fn room_number(name: &str) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    1 + hash % (1 << 50)
}

/// The substream Janus should forward for the scenario's quality; `None`: Janus' default.
fn substream(quality: Quality) -> Option<u8> {
    match quality {
        Quality::Low => Some(0),
        Quality::Medium => Some(1),
        Quality::High => Some(2),
        Quality::Auto => None,
    }
}

/// One Janus participant: its publisher and subscriber connections and what it subscribed.
struct JanusPeer<'a> {
    scenario: &'a Scenario,
    progress: &'a Progress,
    room: u64,
    feed: u64,
    private_id: Option<u64>,
    pub_handle: u64,
    sub_handle: u64,
    publisher: Endpoint<'a>,
    subscriber: Endpoint<'a>,
    /// Feeds seen in the room, and those asked for already.
    feeds: BTreeSet<u64>,
    asked: BTreeSet<u64>,
    /// The feeds of the subscription request Janus has not answered yet.
    in_flight: Vec<u64>,
    /// Janus attached the subscriber handle (later feeds are added with `subscribe`).
    subscriber_joined: bool,
    /// Once something was offered or asked for: the time by which it must be connected.
    connect_deadline: Option<Instant>,
    outgoing: Vec<Value>,
}

/// Run one participant against Janus until `stop_at`.
pub async fn run(
    plan: &PeerPlan,
    scenario: &Scenario,
    progress: &Progress,
    stop_at: Instant,
    result: &mut PeerResult,
) -> anyhow::Result<()> {
    let mut api = JanusApi::connect(&scenario.url).await?;
    let ip = media_ip(scenario, &api.ws)?;
    let pub_handle = api.attach().await?;
    let sub_handle = api.attach().await?;
    let room = room_number(&plan.room);
    let create = json!({
        "request": "create", "room": room, "permanent": false,
        "publishers": scenario.publishers + scenario.subscribers,
        "bitrate": 0, "audiocodec": "opus", "videocodec": "vp8",
    });
    let created = api
        .request(plugin_message(pub_handle, create, None))
        .await?;
    let data = &created["plugindata"]["data"];
    if data["videoroom"] != "created" && data["error_code"].as_i64() != Some(ROOM_EXISTS) {
        anyhow::bail!("Janus did not create room {room}: {data}");
    }
    let join = json!({
        "request": "join", "ptype": "publisher", "room": room,
        "display": format!("load-{}", plan.index),
    });
    let joined = api.request(plugin_message(pub_handle, join, None)).await?;
    let data = &joined["plugindata"]["data"];
    let feed = data["id"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("Janus did not let us join room {room}: {data}"))?;
    result.participant_id = Some(feed.to_string());
    add(&progress.joined, 1);

    let mut peer = JanusPeer {
        scenario,
        progress,
        room,
        feed,
        private_id: data["private_id"].as_u64(),
        pub_handle,
        sub_handle,
        publisher: Endpoint::new(scenario, progress, ip, None)?,
        subscriber: Endpoint::new(scenario, progress, ip, None)?,
        feeds: BTreeSet::new(),
        asked: BTreeSet::new(),
        in_flight: Vec::new(),
        subscriber_joined: false,
        connect_deadline: None,
        outgoing: Vec::new(),
    };
    peer.note_publishers(data);
    if plan.publishes {
        peer.publish(plan.index);
    }
    let mut connections = TwoConnections::default();
    let mut keepalive_at = Instant::now() + KEEPALIVE_INTERVAL;
    loop {
        while let Some(message) = api.backlog.pop_front() {
            peer.on_message(&message, result)?;
        }
        peer.subscribe_to_new_feeds();
        let wake = TwoConnections::drain(&mut peer.publisher, &mut peer.subscriber, result)?;
        for message in peer.outgoing.drain(..) {
            api.send(message).await?;
        }
        let now = Instant::now();
        if now >= stop_at {
            let _ = api.send(json!({"janus": "destroy"})).await;
            let _ = api.ws.close(None).await;
            return Ok(());
        }
        let overdue = peer.connect_deadline.is_some_and(|at| now >= at);
        if overdue && result.join_time.is_none() {
            anyhow::bail!("not connected after {} s", JOIN_TIMEOUT.as_secs());
        }
        if now >= keepalive_at {
            api.send(json!({"janus": "keepalive"})).await?;
            keepalive_at = now + KEEPALIVE_INTERVAL;
        }
        let wake = wake.min(stop_at).min(keepalive_at);
        let signal = api.next_message();
        if let Some(message) = connections
            .serve(
                &mut peer.publisher,
                &mut peer.subscriber,
                signal,
                wake,
                result,
            )
            .await?
        {
            peer.on_message(&message, result)?;
        }
    }
}

impl JanusPeer<'_> {
    /// Offer the scenario's media on the publisher connection.
    fn publish(&mut self, index: u32) {
        let seed = self.scenario.media_seed(index);
        if let Some(offer) = self.publisher.offer(Some(seed), false) {
            let mut message = plugin_message(
                self.pub_handle,
                json!({"request": "publish"}),
                Some(("offer", offer.to_sdp_string())),
            );
            // Our rids go lowest first (q, h, f); Janus assumes highest first unless told.
            message["jsep"]["rid_order"] = json!("lmh");
            self.outgoing.push(message);
            self.outgoing.push(candidates_done(self.pub_handle));
            self.expect_connection();
        }
    }

    /// Start the connect deadline, if it is not running yet.
    fn expect_connection(&mut self) {
        self.connect_deadline
            .get_or_insert_with(|| Instant::now() + JOIN_TIMEOUT);
    }

    /// Remember the feeds in a `publishers` list (other than our own), and forget those that
    /// stopped publishing or left.
    fn note_publishers(&mut self, data: &Value) {
        for publisher in data["publishers"].as_array().into_iter().flatten() {
            if let Some(id) = publisher["id"].as_u64().filter(|id| *id != self.feed) {
                self.feeds.insert(id);
            }
        }
        for gone in [&data["unpublished"], &data["leaving"]] {
            if let Some(id) = gone.as_u64() {
                self.feeds.remove(&id);
                self.asked.remove(&id);
            }
        }
    }

    /// Ask for the feeds not asked for yet, one negotiation at a time.
    fn subscribe_to_new_feeds(&mut self) {
        if !self.in_flight.is_empty() {
            return;
        }
        self.in_flight = self.feeds.difference(&self.asked).copied().collect();
        if self.in_flight.is_empty() {
            return;
        }
        let new: Vec<Value> = self
            .in_flight
            .iter()
            .map(|feed| json!({"feed": feed}))
            .collect();
        let body = if !self.subscriber_joined {
            let mut join = json!({
                "request": "join", "ptype": "subscriber", "room": self.room, "streams": new,
            });
            if let Some(private_id) = self.private_id {
                join["private_id"] = json!(private_id);
            }
            join
        } else {
            json!({"request": "subscribe", "streams": new})
        };
        self.asked.extend(self.in_flight.iter().copied());
        self.outgoing
            .push(plugin_message(self.sub_handle, body, None));
        self.expect_connection();
    }

    fn on_message(&mut self, message: &Value, result: &mut PeerResult) -> anyhow::Result<()> {
        let sender = message["sender"].as_u64();
        match message["janus"].as_str() {
            Some("event") => {
                let data = &message["plugindata"]["data"];
                if let Some(error) = data.get("error") {
                    result.error(self.progress, format!("Janus: {error}"));
                    if sender == Some(self.sub_handle) {
                        // Forget the refused feeds; Janus names them again if they publish.
                        for feed in self.in_flight.drain(..) {
                            self.asked.remove(&feed);
                            self.feeds.remove(&feed);
                        }
                    }
                }
                if sender == Some(self.pub_handle) {
                    self.on_publisher_event(data, &message["jsep"], result)?;
                } else if sender == Some(self.sub_handle) {
                    self.on_subscriber_event(data, &message["jsep"])?;
                }
            }
            Some("trickle") => {
                let candidate = &message["candidate"]["candidate"];
                let endpoint = if sender == Some(self.pub_handle) {
                    &mut self.publisher
                } else {
                    &mut self.subscriber
                };
                if let Some(Ok(candidate)) = candidate.as_str().map(Candidate::from_sdp_string) {
                    endpoint.rtc.add_remote_candidate(candidate);
                }
            }
            Some("hangup") => anyhow::bail!("Janus hung up: {}", message["reason"]),
            Some("timeout") => anyhow::bail!("Janus timed the session out"),
            Some("error") => result.error(self.progress, format!("Janus: {}", message["error"])),
            _ => {} // ack, success, webrtcup, media, slowlink, keepalive replies.
        }
        Ok(())
    }

    fn on_publisher_event(
        &mut self,
        data: &Value,
        jsep: &Value,
        result: &mut PeerResult,
    ) -> anyhow::Result<()> {
        self.note_publishers(data);
        if jsep["type"] == "answer"
            && let Some(pending) = self.publisher.pending.take()
        {
            let sdp = jsep["sdp"].as_str().unwrap_or_default();
            let answer = SdpAnswer::from_sdp_string(sdp)?;
            self.publisher
                .rtc
                .sdp_api()
                .accept_answer(pending, answer)?;
            result.published = self
                .publisher
                .published_mids()
                .map(|mid| format!("{}/{mid}", self.feed))
                .collect();
        }
        Ok(())
    }

    /// `attached` and `updated` answer a subscription request, with Janus' offer for the
    /// subscriber connection when it changed.
    fn on_subscriber_event(&mut self, data: &Value, jsep: &Value) -> anyhow::Result<()> {
        if matches!(data["videoroom"].as_str(), Some("attached" | "updated")) {
            self.subscriber_joined = true;
            self.in_flight.clear();
        }
        if jsep["type"] != "offer" {
            return Ok(());
        }
        let mut video_mids = Vec::new();
        for stream in data["streams"].as_array().into_iter().flatten() {
            let (Some(mid), Some(feed), Some(feed_mid)) = (
                stream["mid"].as_str(),
                stream["feed_id"].as_u64(),
                stream["feed_mid"].as_str(),
            ) else {
                continue;
            };
            let kind = match stream["type"].as_str() {
                Some("audio") => TrackKind::Audio,
                Some("video") => TrackKind::Video,
                _ => continue,
            };
            if kind == TrackKind::Video {
                video_mids.push(mid.to_owned());
            }
            let track = Track {
                id: format!("{feed}/{feed_mid}"),
                participant_id: feed.to_string(),
                kind,
                muted: false,
                simulcast: Vec::new(),
                codec: stream["codec"].as_str().unwrap_or_default().to_owned(),
            };
            self.subscriber
                .inbound
                .insert(Mid::from(mid), track.id.clone());
            self.subscriber.tracks.insert(track.id.clone(), track);
        }
        let offer = SdpOffer::from_sdp_string(jsep["sdp"].as_str().unwrap_or_default())?;
        let answer = self.subscriber.rtc.sdp_api().accept_offer(offer)?;
        self.outgoing.push(plugin_message(
            self.sub_handle,
            json!({"request": "start"}),
            Some(("answer", answer.to_sdp_string())),
        ));
        self.outgoing.push(candidates_done(self.sub_handle));
        if let Some(substream) =
            substream(self.scenario.quality).filter(|_| self.scenario.simulcast)
        {
            let streams: Vec<Value> = video_mids
                .iter()
                .map(|mid| json!({"mid": mid, "substream": substream}))
                .collect();
            self.outgoing.push(plugin_message(
                self.sub_handle,
                json!({"request": "configure", "streams": streams}),
                None,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_numbers_are_stable_distinct_and_json_safe() {
        // Requirement: every participant of a scenario room lands in the same Janus room, and
        // different rooms in different ones.
        let a = room_number("load-0");
        assert_eq!(a, room_number("load-0"));
        assert_ne!(a, room_number("load-1"));
        for r in 0..1000 {
            let n = room_number(&format!("load-{r}"));
            assert!((1..=1 << 50).contains(&n));
        }
    }

    #[test]
    fn requests_carry_body_and_jsep() {
        // Requirement: the Janus API shape: handle, body, and the SDP as a typed JSEP.
        let m = plugin_message(
            7,
            json!({"request": "start"}),
            Some(("answer", "v=0".into())),
        );
        assert_eq!(m["janus"], "message");
        assert_eq!(m["handle_id"], 7);
        assert_eq!(m["body"]["request"], "start");
        assert_eq!(m["jsep"], json!({"type": "answer", "sdp": "v=0"}));
        assert!(plugin_message(7, json!({}), None).get("jsep").is_none());
        assert_eq!(substream(Quality::High), Some(2));
        assert_eq!(substream(Quality::Auto), None);
    }
}
