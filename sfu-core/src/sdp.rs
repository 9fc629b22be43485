//! The little the SFU reads from (and removes in) SDP text itself, beside what str0m
//! parses and writes.

/// The mids of every `a=group:BUNDLE` line of an SDP, in order (str0m keeps a port-0
/// m-line live when its mid is bundled, so the caps must count those m-lines).
pub fn bundle_mids(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter_map(|line| line.trim_end().strip_prefix("a=group:BUNDLE"))
        .flat_map(str::split_whitespace)
        .collect()
}

/// The SDP without its `a=ssrc:` and `a=ssrc-group:` lines. With our own egress the
/// SSRCs str0m announces are not the ones media arrives on; without them, receivers bind
/// each stream to its m-line by the MID header extension (RFC 8843 §9.2).
pub fn without_ssrc_lines(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|line| !line.starts_with("a=ssrc:") && !line.starts_with("a=ssrc-group:"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_ssrc_lines_and_keeps_everything_else() {
        // Requirement: only a=ssrc and a=ssrc-group lines go; msid, line endings and order stay.
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:s t\r\n\
                   a=ssrc-group:FID 1 2\r\na=ssrc:1 cname:x\r\na=ssrc:2 cname:x\r\n\
                   a=ssrcx:3\r\na=rtcp-mux\r\n";
        assert_eq!(
            without_ssrc_lines(sdp),
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:s t\r\na=ssrcx:3\r\na=rtcp-mux\r\n"
        );
        assert_eq!(without_ssrc_lines(""), "");
        assert_eq!(without_ssrc_lines("a=ssrc:1 x"), "");
    }

    #[test]
    fn reads_the_bundled_mids() {
        // Requirement: every mid a BUNDLE group names is found, whatever the line endings or groups.
        let table: [(&str, &[&str], &str); 6] = [
            ("", &[], "empty"),
            (
                "v=0\r\na=group:BUNDLE 0 1 2\r\nm=audio 9 x 0\r\n",
                &["0", "1", "2"],
                "one group",
            ),
            (
                "a=group:BUNDLE a\na=group:BUNDLE b c\n",
                &["a", "b", "c"],
                "two groups, LF",
            ),
            ("a=group:LS 0 1\r\n", &[], "another group semantics"),
            ("a=group:BUNDLE\r\n", &[], "an empty group"),
            ("a=group:BUNDLE  0\t1 \r\n", &["0", "1"], "extra whitespace"),
        ];
        for (sdp, want, case) in table {
            assert_eq!(bundle_mids(sdp), want, "{case}");
        }
    }
}
