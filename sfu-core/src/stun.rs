//! Just enough STUN (RFC 5389) to route a datagram: the local ICE username fragment.
//!
//! A browser's connectivity check carries `USERNAME = <server ufrag>:<client ufrag>`;
//! the server ufrag names the participant the datagram belongs to.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const HEADER_LEN: usize = 20;
const ATTR_USERNAME: u16 = 0x0006;

/// Whether a datagram looks like a STUN message (RFC 7983 demultiplexing plus the magic cookie).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && datagram[0] < 4 && datagram[4..8] == MAGIC_COOKIE
}

/// The receiver's (server's) username fragment of a STUN message, if it carries a USERNAME.
pub fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) {
        return None;
    }
    let body_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(HEADER_LEN..HEADER_LEN + body_len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        // Attributes are padded to a multiple of four bytes.
        let padded = (len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attrs {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn the_server_ufrag_is_read_from_a_binding_request() {
        // Requirement: a connectivity check is routed by the server's ufrag, whatever attributes precede USERNAME.
        let msg = stun_with(&[(0x0024, &[0, 0, 0, 1]), (ATTR_USERNAME, b"srv1:cli")]);
        assert_eq!(local_ufrag(&msg), Some("srv1"));
        let odd = stun_with(&[(0x8022, b"abc"), (ATTR_USERNAME, b"x:y")]);
        assert_eq!(local_ufrag(&odd), Some("x"));
    }

    #[test]
    fn garbage_never_yields_a_ufrag() {
        // Requirement: malformed or non-STUN datagrams are not routed by ufrag and never panic.
        let good = stun_with(&[(ATTR_USERNAME, b"srv1:cli")]);
        let mut bad_cookie = good.clone();
        bad_cookie[5] = 0;
        let mut long_len = good.clone();
        long_len[3] = 200;
        let mut bad_attr_len = good.clone();
        bad_attr_len[23] = 200;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("rtp-like", vec![0x80; 40]),
            ("bad cookie", bad_cookie),
            ("length past end", long_len),
            ("attribute past end", bad_attr_len),
            ("no username", stun_with(&[(0x0024, &[0, 0, 0, 1])])),
            (
                "non-utf8 username",
                stun_with(&[(ATTR_USERNAME, &[0xff, 0xfe])]),
            ),
        ];
        for (what, datagram) in cases {
            assert_eq!(local_ufrag(&datagram), None, "{what}");
        }
        assert!(is_stun(&good));
    }
}
