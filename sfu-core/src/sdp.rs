//! The little the SFU reads from SDP text itself, beside what str0m parses.

/// The mids of every `a=group:BUNDLE` line of an SDP, in order (str0m keeps a port-0
/// m-line live when its mid is bundled, so the caps must count those m-lines).
pub fn bundle_mids(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter_map(|line| line.trim_end().strip_prefix("a=group:BUNDLE"))
        .flat_map(str::split_whitespace)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
