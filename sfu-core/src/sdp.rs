//! The little the SFU reads from SDP text itself, before handing it to str0m.

/// Whether an offer asks to send audio or video (see [`sending_media_sections`]). Used to
/// refuse publishing to participants whose token does not allow it.
pub fn sends_media(sdp: &str) -> bool {
    sending_media_sections(sdp) > 0
}

/// How many `m=audio`/`m=video` sections that are not rejected (port 0) have direction
/// `sendrecv` or `sendonly` (`sendrecv` when they name none, as RFC 4566 says): the tracks
/// an offer publishes.
pub fn sending_media_sections(sdp: &str) -> usize {
    let mut sending = 0;
    let mut in_media = false;
    let mut direction: Option<&str> = None;
    let mut finish = |in_media: bool, direction: Option<&str>| {
        if in_media && matches!(direction.unwrap_or("sendrecv"), "sendrecv" | "sendonly") {
            sending += 1;
        }
    };
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            finish(in_media, direction);
            let mut fields = m.split_whitespace();
            let kind = fields.next().unwrap_or("");
            let port = fields.next().unwrap_or("0");
            in_media = matches!(kind, "audio" | "video") && port != "0";
            direction = None;
        } else if let Some(attr) = line
            .strip_prefix("a=")
            .filter(|a| matches!(*a, "sendrecv" | "sendonly" | "recvonly" | "inactive"))
        {
            direction = Some(attr);
        }
    }
    finish(in_media, direction);
    sending
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_offers_that_publish_from_those_that_only_receive() {
        // Requirement: a subscribe-only participant's offer with send tracks is recognised.
        let table = [
            ("", false, "empty"),
            (
                "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
                false,
                "data only",
            ),
            (
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n",
                true,
                "sendrecv audio",
            ),
            (
                "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n",
                true,
                "sendonly video",
            ),
            (
                "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n",
                false,
                "receiving video",
            ),
            (
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=inactive\r\n",
                false,
                "inactive",
            ),
            (
                "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n",
                false,
                "rejected m-line",
            ),
            (
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n",
                true,
                "no direction means sendrecv",
            ),
            (
                "m=audio 9 RTP/SAVPF 111\r\na=recvonly\r\nm=video 9 RTP/SAVPF 96\r\na=sendonly\r\n",
                true,
                "a later sending section",
            ),
            (
                "m=video 9 RTP/SAVPF 96\r\na=sendonly\r\nm=application 9 DTLS/SCTP x\r\n",
                true,
                "sending before a data section",
            ),
            ("garbage\nm=\na=sendonly", false, "garbage"),
        ];
        for (sdp, want, case) in table {
            assert_eq!(sends_media(sdp), want, "{case}");
        }
        let two = "m=audio 9 RTP/SAVPF 111\r\na=sendonly\r\nm=video 9 RTP/SAVPF 96\r\n\
                   m=video 9 RTP/SAVPF 96\r\na=recvonly\r\n";
        assert_eq!(
            sending_media_sections(two),
            2,
            "sendonly audio and direction-less video"
        );
    }
}
