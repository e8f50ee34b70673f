//! merge_diff equals applying both diffs in turn.

use proptest::prelude::*;

use super::super::testimage::MemImage;
use super::super::{export_diff, merge_diff, StreamError};
use super::{apply, decode_all, pattern, Enc};
use crate::image::Image;
use crate::progress::NoProgress;

/// Mutates `img` a little, driven by `ops`.
fn mutate(img: &MemImage, ops: &[(u16, u16, u8)], new_size: Option<u64>) {
    if let Some(s) = new_size {
        img.resize(s).unwrap();
    }
    let size = img.size().unwrap();
    for (off, len, kind) in ops {
        let off = u64::from(*off) % size.max(1);
        let len = u64::from(*len).min(size - off);
        match kind % 3 {
            0 => img.write_zeroes(off, len).unwrap(),
            _ => img
                .write_at(off, &pattern(len as usize, u64::from(*kind)))
                .unwrap(),
        }
    }
}

fn diff(img: &MemImage, from: Option<&str>, to: &str) -> Vec<u8> {
    let at = img.snapshots().unwrap().open_snapshot(to).unwrap();
    let mut out = Vec::new();
    export_diff(&*at, from, Some(to), &mut out, &NoProgress).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merged_diff_equals_sequential_application(
        len in 1u64..40_000,
        ops1 in proptest::collection::vec(any::<(u16, u16, u8)>(), 0..6),
        ops2 in proptest::collection::vec(any::<(u16, u16, u8)>(), 0..6),
        size2 in proptest::option::of(1u64..50_000),
        size3 in proptest::option::of(1u64..50_000),
    ) {
        let img = MemImage::with_data(pattern(len as usize, len));
        let snaps = img.snapshots().unwrap();
        snaps.create("s1").unwrap();
        mutate(&img, &ops1, size2);
        snaps.create("s2").unwrap();
        mutate(&img, &ops2, size3);
        snaps.create("s3").unwrap();
        let (a, b) = (diff(&img, Some("s1"), "s2"), diff(&img, Some("s2"), "s3"));
        let mut merged = Vec::new();
        merge_diff(&a[..], &b[..], &mut merged).unwrap();
        let (recs, _) = decode_all(&merged[..]).unwrap();
        let s1 = img.snapshot_contents("s1").unwrap();
        prop_assert_eq!(apply(&s1, &recs), img.snapshot_contents("s3").unwrap());
        prop_assert_eq!(&recs[0].0, &super::super::Record::FromSnap("s1".into()));
        prop_assert_eq!(&recs[1].0, &super::super::Record::ToSnap("s3".into()));
    }
}

#[test]
fn merge_refuses_diffs_that_do_not_chain() {
    let a = Enc::v1().name(b't', "x").size(10).end();
    let b = Enc::v1().name(b'f', "y").size(10).end();
    let e = merge_diff(&a[..], &b[..], Vec::new()).unwrap_err();
    assert!(e.to_string().contains("second starts from"), "{e}");
}

#[test]
fn merge_refuses_unordered_input() {
    let a = Enc::v1().size(100).z(50, 1).z(10, 1).end();
    let b = Enc::v1().size(100).end();
    let e = merge_diff(&a[..], &b[..], Vec::new()).unwrap_err();
    assert!(
        matches!(e, StreamError::Malformed { offset: 38, .. }),
        "{e}"
    );
}

#[test]
fn merge_clips_to_the_second_size_and_zeroes_growth() {
    let a = Enc::v1().size(10).w(0, &[1; 10]).end();
    let b = Enc::v1().size(6).end();
    let c = Enc::v1().size(12).w(0, &[2; 2]).end();
    let mut ab = Vec::new();
    merge_diff(&a[..], &b[..], &mut ab).unwrap();
    let mut abc = Vec::new();
    merge_diff(&ab[..], &c[..], &mut abc).unwrap();
    let (recs, _) = decode_all(&abc[..]).unwrap();
    let base = vec![9u8; 12];
    let mut want = vec![2, 2, 1, 1, 1, 1];
    want.resize(12, 0);
    assert_eq!(apply(&base, &recs), want);
}
