//! Heka stream framing (heka.md §2.2): `0x1E | header length | Header | 0x1F | message`.
//!
//! Written by [`write_frame`] (outputs with `use_framing`) and parsed by the
//! `HekaFramingSplitter`. The header is the protobuf `Header` message. Frames may be
//! signed as Heka signs them ([`write_signed_frame`]: an HMAC-MD5 or HMAC-SHA1 of the
//! message bytes, with the signer's name and key version) and checked with [`verify`].

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
    let mut length = None;
    let mut signed = false;
    walk_header(header, |field, v| match (field, v) {
        (1, Field::Varint(v)) => length = usize::try_from(v).ok(),
        (6, Field::Bytes(_)) => signed = true,
        _ => {}
    })?;
    length.map(|message_length| HeaderInfo {
        message_length,
        signed,
    })
}

/// One field of a header: varint or length-delimited.
#[derive(Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Calls `f` with each field of a header protobuf; `None` when it does not parse.
fn walk_header<'a>(header: &'a [u8], mut f: impl FnMut(u64, Field<'a>)) -> Option<()> {
    let mut i = 0;
    while i < header.len() {
        let (key, n) = get_varint(&header[i..])?;
        i += n;
        match key & 7 {
            0 => {
                let (v, n) = get_varint(&header[i..])?;
                i += n;
                f(key >> 3, Field::Varint(v));
            }
            2 => {
                let (len, n) = get_varint(&header[i..])?;
                let start = i.checked_add(n)?;
                i = start.checked_add(usize::try_from(len).ok()?)?;
                f(key >> 3, Field::Bytes(header.get(start..i)?));
            }
            _ => return None,
        }
    }
    Some(())
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

/// Heka's HMAC hash functions (`Header.hmac_hash_function`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacHash {
    /// MD5 (0), Heka's default.
    #[default]
    Md5,
    /// SHA-1 (1).
    Sha1,
}

impl HmacHash {
    fn code(self) -> u64 {
        match self {
            HmacHash::Md5 => 0,
            HmacHash::Sha1 => 1,
        }
    }

    /// The HMAC of `msg` under `key`.
    pub fn sign(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        match self {
            HmacHash::Md5 => match Hmac::<md5::Md5>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            HmacHash::Sha1 => match Hmac::<sha1::Sha1>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }
}

/// A message signer: Heka's `[signer]` keys (`name`, `hmac_hash`, `hmac_key`,
/// `version`), as `heka-sbmgr` and Heka's client library sign.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// The signer's name (`Header.hmac_signer`).
    pub name: String,
    /// `md5` (default) or `sha1`.
    #[serde(default)]
    pub hmac_hash: HmacHash,
    /// The shared key.
    pub hmac_key: String,
    /// The key's version (`Header.hmac_key_version`). Default 0.
    #[serde(default)]
    pub version: u32,
}

/// Appends `msg` in a Heka frame signed by `signer` (Heka's `CreateHekaStream`): the
/// header holds `message_length`, `hmac_hash_function` (only for SHA-1, as Heka leaves
/// the MD5 default unset), `hmac_signer`, `hmac_key_version` and `hmac`, in field order.
pub fn write_signed_frame(msg: &[u8], signer: &SignerConfig, out: &mut Vec<u8>) {
    let mut header = Vec::with_capacity(64);
    let varint = |field: u64, v: u64, h: &mut Vec<u8>| {
        let mut b = [0u8; 10];
        let n = put_varint(field << 3, &mut b);
        h.extend_from_slice(&b[..n]);
        let n = put_varint(v, &mut b);
        h.extend_from_slice(&b[..n]);
    };
    varint(1, msg.len() as u64, &mut header);
    if signer.hmac_hash != HmacHash::Md5 {
        varint(3, signer.hmac_hash.code(), &mut header);
    }
    let bytes = |field: u64, v: &[u8], h: &mut Vec<u8>| {
        let mut b = [0u8; 10];
        let n = put_varint((field << 3) | 2, &mut b);
        h.extend_from_slice(&b[..n]);
        let n = put_varint(v.len() as u64, &mut b);
        h.extend_from_slice(&b[..n]);
        h.extend_from_slice(v);
    };
    bytes(4, signer.name.as_bytes(), &mut header);
    varint(5, u64::from(signer.version), &mut header);
    let mac = signer.hmac_hash.sign(signer.hmac_key.as_bytes(), msg);
    bytes(6, &mac, &mut header);
    out.reserve(3 + header.len() + msg.len());
    out.push(RECORD_SEPARATOR);
    out.push(header.len().min(MAX_HEADER_SIZE) as u8);
    out.extend_from_slice(&header);
    out.push(UNIT_SEPARATOR);
    out.extend_from_slice(msg);
}

/// The signature fields of a frame header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signature<'a> {
    /// `hmac_hash_function`.
    pub hash: u64,
    /// `hmac_signer`.
    pub signer: &'a [u8],
    /// `hmac_key_version`.
    pub key_version: u64,
    /// `hmac`.
    pub hmac: &'a [u8],
}

/// Reads the signature fields of a header (`None` when it carries no `hmac`).
pub fn parse_signature(header: &[u8]) -> Option<Signature<'_>> {
    let mut sig = Signature::default();
    let mut signed = false;
    walk_header(header, |field, v| match (field, v) {
        (3, Field::Varint(v)) => sig.hash = v,
        (5, Field::Varint(v)) => sig.key_version = v,
        (4, Field::Bytes(b)) => sig.signer = b,
        (6, Field::Bytes(b)) => {
            sig.hmac = b;
            signed = true;
        }
        _ => {}
    })?;
    signed.then_some(sig)
}

/// What checking a frame's signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// No signature (Heka lets these through, with no signer).
    Unsigned,
    /// A valid signature by this signer.
    Signer(String),
    /// A signer with no key here, an unknown hash function, or a wrong HMAC.
    Invalid(&'static str),
}

/// Checks `msg` against the signature in `header`, with keys by `<signer>_<version>`
/// (Heka's `[name.signer.<signer>_<version>] hmac_key`). Compared in constant time.
pub fn verify(
    header: &[u8],
    msg: &[u8],
    keys: &std::collections::HashMap<String, String>,
) -> Verified {
    let Some(sig) = parse_signature(header) else {
        return Verified::Unsigned;
    };
    let signer = String::from_utf8_lossy(sig.signer).into_owned();
    let Some(key) = keys.get(&format!("{signer}_{}", sig.key_version)) else {
        return Verified::Invalid("unknown signer");
    };
    let hash = match sig.hash {
        0 => HmacHash::Md5,
        1 => HmacHash::Sha1,
        _ => return Verified::Invalid("unknown hash function"),
    };
    let expected = hash.sign(key.as_bytes(), msg);
    let same = expected.len() == sig.hmac.len()
        && expected
            .iter()
            .zip(sig.hmac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Verified::Signer(signer)
    } else {
        Verified::Invalid("wrong signature")
    }
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

    /// HMACs computed independently with Python's `hmac` module over bytes 0..40.
    #[test]
    fn signatures_match_pythons_hmac_and_verify() {
        let msg: Vec<u8> = (0u8..40).collect();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(&HmacHash::Md5.sign(b"secret", &msg)),
            "42033e77b7bb769eeda597952be31e20"
        );
        assert_eq!(
            hex(&HmacHash::Sha1.sign(b"secret", &msg)),
            "0e8442f3e18b8f94d7874fd5b01580574a188e9f"
        );
        let signer = SignerConfig {
            name: "ops".into(),
            hmac_hash: HmacHash::Sha1,
            hmac_key: "secret".into(),
            version: 2,
        };
        let mut out = Vec::new();
        write_signed_frame(&msg, &signer, &mut out);
        let hlen = out[1] as usize;
        let header = &out[2..2 + hlen];
        assert_eq!(parse_header(header), Some(40));
        assert_eq!(&out[3 + hlen..], &msg[..]);
        let keys = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect();
        assert_eq!(
            verify(header, &msg, &keys("ops_2", "secret")),
            Verified::Signer("ops".into())
        );
        assert_eq!(
            verify(header, &msg, &keys("ops_2", "other")),
            Verified::Invalid("wrong signature")
        );
        assert_eq!(
            verify(header, &msg, &keys("ops_1", "secret")),
            Verified::Invalid("unknown signer")
        );
        let mut plain = Vec::new();
        write_frame(&msg, &mut plain);
        assert_eq!(
            verify(
                &plain[2..2 + plain[1] as usize],
                &msg,
                &keys("ops_2", "secret")
            ),
            Verified::Unsigned
        );
    }

    #[test]
    fn an_md5_header_leaves_the_hash_field_unset_as_heka_does() {
        let signer = SignerConfig {
            name: "s".into(),
            hmac_hash: HmacHash::Md5,
            hmac_key: "k".into(),
            version: 0,
        };
        let mut out = Vec::new();
        write_signed_frame(b"m", &signer, &mut out);
        // length 1; signer "s"; version 0; 16-byte hmac
        assert_eq!(&out[2..9], &[0x08, 0x01, 0x22, 0x01, b's', 0x28, 0x00]);
        assert_eq!(out[9], 0x32);
        assert_eq!(out[10], 16);
    }
}
