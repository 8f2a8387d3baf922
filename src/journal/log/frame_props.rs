//! Property tests of reading a file back: whatever the bytes, reading never panics; whatever
//! damage a file suffers (flipped bytes, zeroed or overwritten stretches, a cut), every record
//! whose bytes are untouched is read back — before the damage and after it — and no damaged
//! record ever comes back.

use super::format::{self, Refusal};
use super::frame::{HEADER_LEN, encode, encode_into};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config() -> Config {
    Config {
        cases: 400,
        rng_seed: RngSeed::Fixed(22),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Distinct records of printable bytes, like dtc's JSON records.
fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(0x20u8..0x7f, 1..64), 1..16).prop_map(|rs| {
        rs.into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.extend_from_slice(format!("#{i}").as_bytes());
                r
            })
            .collect()
    })
}

/// One way a disk damages a file.
#[derive(Debug, Clone)]
enum Hurt {
    Flip(prop::sample::Index, u8),
    Zero(prop::sample::Index, usize),
    Garbage(prop::sample::Index, Vec<u8>),
    Cut(prop::sample::Index),
}

fn hurts() -> impl Strategy<Value = Vec<Hurt>> {
    let one = prop_oneof![
        (any::<prop::sample::Index>(), 1u8..).prop_map(|(i, x)| Hurt::Flip(i, x)),
        (any::<prop::sample::Index>(), 1usize..600).prop_map(|(i, n)| Hurt::Zero(i, n)),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..80)
        )
            .prop_map(|(i, g)| Hurt::Garbage(i, g)),
        any::<prop::sample::Index>().prop_map(Hurt::Cut),
    ];
    prop::collection::vec(one, 1..4)
}

fn apply(bytes: &mut Vec<u8>, hurt: &Hurt) {
    if bytes.is_empty() {
        return;
    }
    match hurt {
        Hurt::Flip(i, x) => {
            let at = i.index(bytes.len());
            bytes[at] ^= x;
        }
        Hurt::Zero(i, n) => {
            let at = i.index(bytes.len());
            let end = (at + n).min(bytes.len());
            bytes[at..end].fill(0);
        }
        Hurt::Garbage(i, g) => {
            let at = i.index(bytes.len());
            let end = (at + g.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&g[..end - at]);
        }
        Hurt::Cut(i) => bytes.truncate(i.index(bytes.len())),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_read_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(r) = format::read(&bytes) {
            prop_assert!(r.end <= bytes.len() as u64);
            for (at, p) in &r.records {
                prop_assert_eq!(&bytes[*at as usize + HEADER_LEN..][..p.len()], &p[..]);
            }
        }
    }

    #[test]
    fn encoded_records_read_back_whole(records in payloads()) {
        let mut bytes = format::header_frame(3);
        records.iter().for_each(|r| encode_into(r, &mut bytes));
        let r = format::read(&bytes).unwrap();
        let back: Vec<Vec<u8>> = r.records.into_iter().map(|(_, p)| p).collect();
        prop_assert_eq!(back, records);
        prop_assert!(r.damage.is_empty());
    }

    #[test]
    fn damage_never_costs_an_untouched_record_nor_resurrects_a_damaged_one(
        records in payloads(),
        hurts in hurts(),
    ) {
        let mut original = format::header_frame(0);
        let mut frames = Vec::new();
        for r in &records {
            let at = original.len();
            original.extend_from_slice(&encode(r));
            frames.push((at, r.clone()));
        }
        let mut bytes = original.clone();
        hurts.iter().for_each(|h| apply(&mut bytes, h));
        let untouched: Vec<(u64, Vec<u8>)> = frames
            .iter()
            .filter(|(at, r)| {
                let end = at + HEADER_LEN + r.len();
                end <= bytes.len() && bytes[*at..end] == original[*at..end]
            })
            .map(|(at, r)| (*at as u64, r.clone()))
            .collect();
        match format::read(&bytes) {
            Ok(read) => {
                for rec in &read.records {
                    prop_assert!(untouched.contains(rec), "a damaged record came back: {:?}", rec);
                }
                for rec in &untouched {
                    prop_assert!(read.records.contains(rec), "an untouched record was lost: {:?}", rec);
                }
            }
            Err(Refusal::Foreign) => prop_assert!(untouched.is_empty(), "refused with intact records"),
            Err(Refusal::Future(v)) => prop_assert!(false, "a damaged file taken for format {}", v),
        }
    }
}
