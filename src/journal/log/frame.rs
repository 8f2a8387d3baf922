//! The on-disk frame, `[len: u32 LE][crc32 of payload: u32 LE][payload]`, and the scan that
//! reads frames back, resynchronising on the next intact frame after a damaged one.

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

/// A stretch of bytes between intact frames (or after the last one) that is no intact frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bad {
    pub start: usize,
    pub end: usize,
    /// Why the frame at `start` is not intact.
    pub why: String,
}

/// What a scan of a file's bytes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// Offset and payload of every intact frame, in file order.
    pub records: Vec<(usize, Vec<u8>)>,
    /// The damaged stretches, in file order.
    pub bad: Vec<Bad>,
    /// End of the last intact frame (`from` when there is none).
    pub end: usize,
}

/// Reads frames from `from` to `data_end` (the end of the non-zero bytes: zeros after it are
/// room the file was grown by). After a bad frame it looks for the next offset where an intact
/// frame starts and goes on from there, so one damaged record costs only itself. Never panics.
///
/// A frame's header is 8 bytes whose fourth byte (the length's highest) is at most 4, and dtc's
/// records are JSON text, which holds no byte below 0x20: the search can only stop at a real
/// frame boundary (or, with odds of 2^-32 per candidate, in binary garbage).
pub(super) fn scan(bytes: &[u8], from: usize, data_end: usize) -> Scan {
    let mut scan = Scan {
        end: from,
        ..Scan::default()
    };
    let mut at = from;
    while at < data_end {
        match read_frame(&bytes[at..]) {
            Ok(payload) => {
                scan.records.push((at, payload.to_vec()));
                at += HEADER_LEN + payload.len();
                scan.end = at;
            }
            Err(why) => {
                let next = (at + 1..data_end).find(|&p| read_frame(&bytes[p..]).is_ok());
                let end = next.unwrap_or(data_end);
                scan.bad.push(Bad {
                    start: at,
                    end,
                    why: format!("{why} at offset {at}"),
                });
                at = end;
            }
        }
    }
    scan
}

/// The end of the bytes that are not zero.
pub(super) fn data_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// The length a frame header at the start of `rest` claims, if it has a whole header.
pub(super) fn claimed_len(rest: &[u8]) -> Option<usize> {
    let (header, _) = rest.split_first_chunk::<HEADER_LEN>()?;
    let [l0, l1, l2, l3, ..] = *header;
    Some(u32::from_le_bytes([l0, l1, l2, l3]) as usize)
}

/// Why the bytes at an offset are not an intact frame (the text goes into the damage report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum NotAFrame {
    #[error("torn header ({0} of {HEADER_LEN} bytes)")]
    TornHeader(usize),
    #[error("empty record (zeroed or garbage bytes)")]
    Empty,
    #[error("corrupt header claiming {0} bytes")]
    TooLong(usize),
    #[error("torn record ({have} of {len} bytes)")]
    TornRecord { have: usize, len: usize },
    #[error("checksum mismatch in a {0}-byte record")]
    Checksum(usize),
}

/// One frame from the start of `rest`, or why it is not intact.
pub(super) fn read_frame(rest: &[u8]) -> Result<&[u8], NotAFrame> {
    let Some((header, body)) = rest.split_first_chunk::<HEADER_LEN>() else {
        return Err(NotAFrame::TornHeader(rest.len()));
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if len == 0 {
        return Err(NotAFrame::Empty);
    }
    if len > MAX_RECORD {
        return Err(NotAFrame::TooLong(len));
    }
    let Some(payload) = body.get(..len) else {
        return Err(NotAFrame::TornRecord {
            have: body.len(),
            len,
        });
    };
    if crc32fast::hash(payload) != crc {
        return Err(NotAFrame::Checksum(len));
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

    fn scan_all(bytes: &[u8]) -> Scan {
        scan(bytes, 0, data_end(bytes))
    }

    fn payloads(s: &Scan) -> Vec<Vec<u8>> {
        s.records.iter().map(|(_, p)| p.clone()).collect()
    }

    #[test]
    fn zeroed_blocks_are_room_not_records() {
        let s = scan_all(&[0u8; 64]);
        assert!(s.records.is_empty() && s.bad.is_empty());
    }

    #[test]
    fn absurd_length_is_corruption() {
        let mut bytes = file_of(&[b"ok".to_vec()]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[7; 12]);
        let s = scan_all(&bytes);
        assert_eq!(payloads(&s), vec![b"ok".to_vec()]);
        assert_eq!(s.end, 10);
        assert!(s.bad[0].why.contains("corrupt header"), "{:?}", s.bad);
    }

    #[test]
    fn a_flipped_frame_in_the_middle_costs_only_itself() {
        let records = vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()];
        let mut bytes = file_of(&records);
        bytes[HEADER_LEN + 3 + HEADER_LEN + 1] ^= 0x20;
        let s = scan_all(&bytes);
        assert_eq!(payloads(&s), vec![b"one".to_vec(), b"three".to_vec()]);
        assert_eq!(
            s.bad,
            vec![Bad {
                start: 11,
                end: 22,
                why: "checksum mismatch in a 3-byte record at offset 11".into()
            }]
        );
    }

    /// Any cut of a valid file yields exactly the records wholly before the cut; random
    /// bytes never panic and never yield more than they hold. Fixed seed: reproducible.
    #[test]
    fn cuts_and_garbage_keep_an_intact_prefix() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for _ in 0..500 {
            let records: Vec<Vec<u8>> = (0..rng.usize(0..8))
                .map(|_| (0..rng.usize(1..40)).map(|_| rng.u8(1..)).collect())
                .collect();
            let bytes = file_of(&records);
            let cut = rng.usize(0..=bytes.len());
            let s = scan_all(&bytes[..cut]);
            let mut ends = records.iter().scan(0, |end, r| {
                *end += HEADER_LEN + r.len();
                Some(*end)
            });
            let whole = ends.by_ref().take_while(|&end| end <= cut).count();
            assert_eq!(payloads(&s), records[..whole]);

            let garbage: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            let s = scan_all(&garbage);
            assert!(s.end <= garbage.len());
        }
    }
}
