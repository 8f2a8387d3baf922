//! Property tests of the frame format: whatever the bytes, the scan never panics and keeps
//! only an intact prefix; a torn or flipped tail loses no record before it.

use super::frame::{HEADER_LEN, encode, scan};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config() -> Config {
    Config {
        cases: 200,
        rng_seed: RngSeed::Fixed(14),
        failure_persistence: None,
        ..Config::default()
    }
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 0..12)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_scan_to_an_intact_prefix(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let s = scan(&bytes);
        prop_assert!(s.good_len as usize <= bytes.len());
        let framed: usize = s.records.iter().map(|r| HEADER_LEN + r.len()).sum();
        prop_assert_eq!(framed as u64, s.good_len);
        prop_assert_eq!(s.reason.is_some(), (s.good_len as usize) < bytes.len());
    }

    #[test]
    fn encoded_records_scan_back_whole(records in payloads()) {
        let bytes: Vec<u8> = records.iter().flat_map(|r| encode(r)).collect();
        let s = scan(&bytes);
        prop_assert_eq!(&s.records, &records);
        prop_assert_eq!(s.good_len as usize, bytes.len());
    }

    #[test]
    fn a_torn_or_flipped_tail_keeps_every_record_before_it(
        records in payloads().prop_filter("some", |r| !r.is_empty()),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let bytes: Vec<u8> = records.iter().flat_map(|r| encode(r)).collect();
        let last = encode(records.last().unwrap()).len();
        let start = bytes.len() - last;
        // Torn: the last frame ends early.
        let torn = &bytes[..start + cut.index(last)];
        prop_assert_eq!(&scan(torn).records[..], &records[..records.len() - 1]);
        // Flipped: one byte of the last frame changed.
        let mut flipped = bytes.clone();
        flipped[start + flip.index(last)] ^= 0x5a;
        let s = scan(&flipped);
        prop_assert!(s.records.len() >= records.len() - 1);
        prop_assert_eq!(&s.records[..records.len() - 1], &records[..records.len() - 1]);
    }
}
