//! Heka stream framing (heka.md §2.2): `0x1E | header length | Header | 0x1F | message`.
//!
//! Written by [`write_frame`] (outputs with `use_framing`) and parsed by the
//! `HekaFramingSplitter`. The header is the protobuf `Header` message; hekate writes only
//! `message_length` and ignores the HMAC fields on read.

/// Record separator that starts every frame.
pub const RECORD_SEPARATOR: u8 = 0x1E;
/// Unit separator between header and message.
pub const UNIT_SEPARATOR: u8 = 0x1F;
/// Largest header Heka allows.
pub const MAX_HEADER_SIZE: usize = 255;

/// Appends `msg` wrapped in a Heka frame to `out`.
pub fn write_frame(msg: &[u8], out: &mut Vec<u8>) {
    let mut header = [0u8; 11];
    header[0] = 0x08; // field 1 (message_length), varint
    let n = 1 + put_varint(msg.len() as u64, &mut header[1..]);
    out.reserve(3 + n + msg.len());
    out.push(RECORD_SEPARATOR);
    out.push(n as u8);
    out.extend_from_slice(&header[..n]);
    out.push(UNIT_SEPARATOR);
    out.extend_from_slice(msg);
}

fn put_varint(mut v: u64, buf: &mut [u8]) -> usize {
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[i] = byte;
            return i + 1;
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
}

/// What a frame header says about the message that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Length of the message bytes after the unit separator.
    pub message_length: usize,
    /// True when the header carries an HMAC signature (field 6).
    pub signed: bool,
}

/// Parses a frame header's protobuf, returning `message_length`, or `None` if it is not a
/// valid header (field 1 is required).
pub fn parse_header(header: &[u8]) -> Option<usize> {
    parse_header_info(header).map(|h| h.message_length)
}

/// Parses a frame header's protobuf: `message_length` (required) and whether it is signed.
pub fn parse_header_info(header: &[u8]) -> Option<HeaderInfo> {
    let mut i = 0;
    let mut length = None;
    let mut signed = false;
    while i < header.len() {
        let (key, n) = get_varint(&header[i..])?;
        i += n;
        match (key >> 3, key & 7) {
            (field, 0) => {
                let (v, n) = get_varint(&header[i..])?;
                i += n;
                if field == 1 {
                    length = Some(usize::try_from(v).ok()?);
                }
            }
            (field, 2) => {
                let (len, n) = get_varint(&header[i..])?;
                i = i.checked_add(n)?.checked_add(usize::try_from(len).ok()?)?;
                if i > header.len() {
                    return None;
                }
                signed |= field == 6;
            }
            _ => return None,
        }
    }
    length.map(|message_length| HeaderInfo {
        message_length,
        signed,
    })
}

fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let msg = vec![7u8; 300];
        let mut out = Vec::new();
        write_frame(&msg, &mut out);
        assert_eq!(out[0], RECORD_SEPARATOR);
        let hlen = out[1] as usize;
        assert_eq!(out[2 + hlen], UNIT_SEPARATOR);
        assert_eq!(parse_header(&out[2..2 + hlen]), Some(300));
        assert_eq!(&out[3 + hlen..], &msg[..]);
        // 300 = 0xAC 0x02 as varint
        assert_eq!(&out[..6], &[0x1E, 3, 0x08, 0xAC, 0x02, 0x1F]);
    }

    #[test]
    fn header_without_length_is_invalid() {
        assert_eq!(parse_header(&[0x18, 0x01]), None);
        assert_eq!(parse_header(&[0xFF]), None);
    }
}
