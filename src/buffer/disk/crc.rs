//! CRC-32C (Castagnoli), the checksum of every disk buffer record: the CPU's CRC32
//! instruction where there is one (x86-64 with SSE4.2), otherwise slicing-by-8 tables
//! built at compile time. No dependency.

const POLY: u32 = 0x82F6_3B78;

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

static T: [[u32; 256]; 8] = tables();

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            return hardware(data);
        }
    }
    software(data)
}

/// With the SSE4.2 `crc32` instruction, 8 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // SSE4.2 intrinsics.
fn hardware(data: &[u8]) -> u32 {
    #[target_feature(enable = "sse4.2")]
    fn run(data: &[u8]) -> u32 {
        use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
        let mut crc = u64::from(!0u32);
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            crc = _mm_crc32_u64(crc, word);
        }
        let mut crc = crc as u32;
        for b in chunks.remainder() {
            crc = _mm_crc32_u8(crc, *b);
        }
        !crc
    }
    // SAFETY: only called after `is_x86_feature_detected!("sse4.2")` returned true, so the
    // CPU supports every instruction `run` was compiled with; `run` touches memory only
    // through the `data` slice.
    unsafe { run(data) }
}

/// Table-driven, for CPUs without the instruction (and to check the hardware path).
fn software(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = T[7][(lo & 0xff) as usize]
            ^ T[6][((lo >> 8) & 0xff) as usize]
            ^ T[5][((lo >> 16) & 0xff) as usize]
            ^ T[4][(lo >> 24) as usize]
            ^ T[3][(hi & 0xff) as usize]
            ^ T[2][((hi >> 8) & 0xff) as usize]
            ^ T[1][((hi >> 16) & 0xff) as usize]
            ^ T[0][(hi >> 24) as usize];
    }
    for b in chunks.remainder() {
        crc = (crc >> 8) ^ T[0][((crc ^ u32::from(*b)) & 0xff) as usize];
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::crc32c;

    #[test]
    fn known_vectors() {
        // RFC 3720 (iSCSI) B.4 and the common check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn hardware_and_tables_agree() {
        let data: Vec<u8> = (0..4099u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4099] {
            assert_eq!(crc32c(&data[..len]), super::software(&data[..len]), "{len}");
        }
    }
}
