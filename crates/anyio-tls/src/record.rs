//! TLS record framing, just enough to hand rustls one whole record at a time: so that the
//! bytes after the peer's close_notify stay ours (`unwrap`), and so that bytes that are not TLS
//! fail at once instead of waiting for a "record" of up to 64 KiB that never comes.

/// The record header: content type, legacy version (2), length (2).
pub(crate) const HEADER_LEN: usize = 5;

/// The largest record body TLS allows: 2^14 plaintext plus 2048 of expansion (RFC 5246
/// section 6.2.3; TLS 1.3 allows less, and rustls checks that itself).
pub(crate) const MAX_BODY_LEN: usize = 16384 + 2048;

/// What the front of a receive buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Front {
    /// A whole record of this many bytes, header included.
    Record(usize),
    /// Part of a record: more bytes are needed.
    Partial,
    /// Not a TLS record: the reason.
    Invalid(String),
}

/// Looks at the record at the front of `buf`.
pub(crate) fn front(buf: &[u8]) -> Front {
    if buf.is_empty() {
        return Front::Partial;
    }
    // change_cipher_spec, alert, handshake, application_data, heartbeat.
    if !(20..=24).contains(&buf[0]) {
        return Front::Invalid(format!("the peer sent bytes that are not TLS (first byte 0x{:02x})", buf[0]));
    }
    if buf.len() >= 2 && buf[1] != 3 {
        return Front::Invalid(format!(
            "the peer sent bytes that are not TLS (version byte 0x{:02x})",
            buf[1]
        ));
    }
    if buf.len() < HEADER_LEN {
        return Front::Partial;
    }
    let body = body_len(buf);
    if body > MAX_BODY_LEN {
        return Front::Invalid(format!(
            "the peer sent an oversized TLS record ({body} bytes, at most {MAX_BODY_LEN})"
        ));
    }
    if buf.len() < HEADER_LEN + body {
        Front::Partial
    } else {
        Front::Record(HEADER_LEN + body)
    }
}

/// The body length a record header announces; `buf` holds at least the header.
fn body_len(buf: &[u8]) -> usize {
    u16::from_be_bytes([buf[3], buf[4]]) as usize
}

/// How long the record at the front of `buf` is in all, once its header has arrived.
pub(crate) fn announced_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= HEADER_LEN).then(|| HEADER_LEN + body_len(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_record_is_found_and_a_short_one_is_partial() {
        let rec = [23, 3, 3, 0, 2, 0xaa, 0xbb, 22];
        assert_eq!(front(&rec), Front::Record(7));
        assert_eq!(front(&rec[..6]), Front::Partial);
        assert_eq!(front(&rec[..3]), Front::Partial);
        assert_eq!(front(&[]), Front::Partial);
    }

    #[test]
    fn bytes_that_are_not_tls_fail_at_the_first_byte() {
        assert!(matches!(front(b"GET / HTTP/1.1\r\n"), Front::Invalid(_)));
        assert!(matches!(front(b"\x16"), Front::Partial));
        assert!(matches!(front(b"\x16\x01"), Front::Invalid(_)));
    }

    #[test]
    fn an_oversized_record_is_invalid_before_its_body_arrives() {
        assert!(matches!(front(&[23, 3, 3, 0xff, 0xff]), Front::Invalid(m) if m.contains("oversized")));
        let max = (MAX_BODY_LEN as u16).to_be_bytes();
        assert_eq!(front(&[23, 3, 3, max[0], max[1]]), Front::Partial);
    }
}
