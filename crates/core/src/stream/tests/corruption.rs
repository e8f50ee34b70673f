//! Corrupted and truncated streams never panic and never pass as something
//! they are not.
//!
//! The format has no checksums, so a changed byte can be undetectable. The
//! sound properties are:
//! 1. any truncation before the end of `e` is an error naming the cut;
//! 2. whatever the reader accepts is exactly what the bytes say: the
//!    records it returns re-encode to the consumed bytes (it never invents,
//!    drops or reorders data);
//! 3. a changed byte in a `w` payload changes at most that one image byte,
//!    and a changed byte after `e` changes nothing.

use proptest::prelude::*;

use super::super::testimage::MemImage;
use super::super::{import_diff, ImportOptions, Record, StreamError};
use super::{apply, decode_all, encode_v1, pattern, Enc};
use crate::progress::NoProgress;

/// A valid stream, its records' payload byte ranges and the image it makes.
fn sample(seed: u64) -> (Vec<u8>, Vec<std::ops::Range<usize>>, usize) {
    let data = pattern(3000, seed);
    let mut e = Enc::v1();
    e.name(b'f', "a").name(b't', "b").size(20_000);
    let mut payloads = Vec::new();
    for (i, off) in [100u64, 7000, 15000].iter().enumerate() {
        e.z(*off + 4000, 50);
        let start = e.buf.len() + 17;
        e.w(*off, &data[i * 1000..(i + 1) * 1000]);
        payloads.push(start..start + 1000);
    }
    let stream = e.end();
    let end = stream.len();
    let mut with_tail = stream;
    with_tail.extend_from_slice(b"trailing");
    (with_tail, payloads, end)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn truncation_is_always_an_error(seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
        let (s, _, end) = sample(seed);
        let cut = cut.index(end); // strictly before the end of `e`
        match decode_all(&s[..cut]) {
            Err(StreamError::Truncated { offset, .. }) => prop_assert_eq!(offset, cut as u64),
            other => prop_assert!(false, "cut at {}: {:?}", cut, other.map(|r| r.1)),
        }
    }

    #[test]
    fn corruption_never_yields_wrong_data(
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (good, payloads, end) = sample(seed);
        let (good_recs, _) = decode_all(&good[..]).unwrap();
        let good_img = apply(&[], &good_recs);
        let at = at.index(good.len());
        let mut bad = good.clone();
        bad[at] ^= xor;
        let Ok((recs, consumed)) = decode_all(&bad[..]) else { return Ok(()) };
        // 2: the reader reports exactly the consumed bytes.
        prop_assert_eq!(&encode_v1(&recs)[..], &bad[..consumed as usize]);
        // 3: payload and trailing bytes.
        if at >= end {
            prop_assert_eq!(apply(&[], &recs), good_img);
        } else if payloads.iter().any(|p| p.contains(&at)) {
            let img = apply(&[], &recs);
            let diff = img.iter().zip(&good_img).filter(|(a, b)| a != b).count();
            prop_assert_eq!(img.len(), good_img.len());
            prop_assert_eq!(diff, 1);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), v2 in any::<bool>()) {
        let mut s = if v2 { b"rbd diff v2\n".to_vec() } else { b"rbd diff v1\n".to_vec() };
        s.extend_from_slice(&bytes);
        let _ = decode_all(&s[..]);
        let target = MemImage::new(1000);
        let _ = import_diff(&s[..], &target, ImportOptions { force: true }, &NoProgress);
    }
}

#[test]
fn sample_is_well_formed() {
    let (s, payloads, end) = sample(3);
    let (recs, consumed) = decode_all(&s[..]).unwrap();
    assert_eq!(consumed as usize, end);
    assert_eq!(recs.len(), 9);
    assert!(matches!(
        recs[6].0,
        Record::Data {
            offset: 7000,
            len: 1000
        }
    ));
    assert_eq!(s[payloads[0].start - 17], b'w');
}
