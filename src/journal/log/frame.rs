//! The on-disk frame, `[len: u32 LE][crc32 of payload: u32 LE][payload]`, and the scan that
//! reads frames back and finds where the intact prefix of a file ends.

/// Bytes before the payload: length then checksum.
pub(super) const HEADER_LEN: usize = 8;

/// Largest payload accepted. A header claiming more is taken for corruption, so a flipped
/// bit in a length cannot make the reader allocate gigabytes.
pub(super) const MAX_RECORD: usize = 64 << 20;

/// Appends the frame of `payload` to `out`. The caller has checked `0 < len <= MAX_RECORD`.
pub(super) fn encode_into(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The frame of one payload.
pub(super) fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(payload, &mut out);
    out
}

/// What a scan of a file's bytes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// Payloads of the intact frames, in file order.
    pub records: Vec<Vec<u8>>,
    /// Length of the intact prefix; everything after it is to be cut.
    pub good_len: u64,
    /// Why the scan stopped before the end of the bytes, if it did.
    pub reason: Option<String>,
}

/// Reads frames until the bytes end or a frame is torn or corrupt. Never panics.
///
/// Everything from the first bad frame on is treated as damage: later frames that happen to
/// check out cannot be trusted to be in order with what was lost.
pub(super) fn scan(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0usize;
    while at < bytes.len() {
        match read_frame(&bytes[at..]) {
            Ok(payload) => {
                scan.records.push(payload.to_vec());
                at += HEADER_LEN + payload.len();
            }
            Err(why) => {
                scan.reason = Some(format!("{why} at offset {at}"));
                break;
            }
        }
    }
    scan.good_len = at as u64;
    scan
}

/// One frame from the start of `rest`, or why it is not intact.
fn read_frame(rest: &[u8]) -> Result<&[u8], String> {
    let Some((header, body)) = rest.split_first_chunk::<HEADER_LEN>() else {
        return Err(format!(
            "torn header ({} of {HEADER_LEN} bytes)",
            rest.len()
        ));
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if len == 0 {
        return Err("empty record (zeroed or garbage bytes)".to_owned());
    }
    if len > MAX_RECORD {
        return Err(format!("corrupt header claiming {len} bytes"));
    }
    let Some(payload) = body.get(..len) else {
        return Err(format!("torn record ({} of {len} bytes)", body.len()));
    };
    if crc32fast::hash(payload) != crc {
        return Err(format!("checksum mismatch in a {len}-byte record"));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        records.iter().for_each(|r| encode_into(r, &mut out));
        out
    }

    #[test]
    fn zeroed_blocks_are_not_records() {
        let scan = scan(&[0u8; 64]);
        assert!(scan.records.is_empty());
        assert_eq!(scan.good_len, 0);
        assert!(scan.reason.is_some_and(|r| r.contains("empty record")));
    }

    #[test]
    fn absurd_length_is_corruption() {
        let mut bytes = file_of(&[b"ok".to_vec()]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 12]);
        let scan = scan(&bytes);
        assert_eq!(scan.records, vec![b"ok".to_vec()]);
        assert_eq!(scan.good_len, 10);
        assert!(scan.reason.is_some_and(|r| r.contains("corrupt header")));
    }

    /// Any cut of a valid file yields exactly the records wholly before the cut; random
    /// bytes never panic and never yield more than they hold. Fixed seed: reproducible.
    #[test]
    fn cuts_and_garbage_keep_an_intact_prefix() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for _ in 0..500 {
            let records: Vec<Vec<u8>> = (0..rng.usize(0..8))
                .map(|_| (0..rng.usize(1..40)).map(|_| rng.u8(..)).collect())
                .collect();
            let bytes = file_of(&records);
            let cut = rng.usize(0..=bytes.len());
            let scan = scan(&bytes[..cut]);
            let mut ends = records.iter().scan(0, |end, r| {
                *end += HEADER_LEN + r.len();
                Some(*end)
            });
            let whole = ends.by_ref().take_while(|&end| end <= cut).count();
            assert_eq!(scan.records, records[..whole]);
            assert_eq!(scan.reason.is_some(), (scan.good_len as usize) < cut);

            let garbage: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            let scan = super::scan(&garbage);
            assert!(scan.good_len as usize <= garbage.len());
        }
    }
}
