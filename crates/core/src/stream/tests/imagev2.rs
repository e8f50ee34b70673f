//! "rbd image v2" export and import.

use std::collections::BTreeMap;

use super::super::testimage::MemImage;
use super::super::{export_image_v2, import_image_v2, ImageV2Header, StreamError};
use super::{le64, pattern, Enc};
use crate::image::Image;
use crate::progress::NoProgress;

fn source() -> MemImage {
    let img = MemImage::with_data(pattern(30_000, 1));
    let snaps = img.snapshots().unwrap();
    snaps.create("one").unwrap();
    img.write_at(100, &[5; 5000]).unwrap();
    img.resize(20_000).unwrap();
    snaps.create("two").unwrap();
    img.resize(35_000).unwrap();
    img.write_at(34_000, &[6; 1000]).unwrap();
    snaps.create("three").unwrap();
    img.write_zeroes(0, 8000).unwrap();
    img
}

fn header() -> ImageV2Header {
    let mut meta = BTreeMap::new();
    meta.insert("conf_rbd_cache".to_string(), "false".to_string());
    meta.insert("owner".to_string(), "ops".to_string());
    ImageV2Header {
        order: 23,
        features: 1,
        meta,
        ..ImageV2Header::default()
    }
}

#[test]
fn round_trip_recreates_every_snapshot() {
    let src = source();
    let mut stream = Vec::new();
    export_image_v2(&src, &header(), &mut stream, &NoProgress).unwrap();
    let target = MemImage::new(0);
    let rep = import_image_v2(&stream[..], &target, &NoProgress).unwrap();
    assert_eq!(rep.header, header());
    let names: Vec<_> = rep.snapshots.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["one", "two", "three"]);
    assert!(rep
        .snapshots
        .iter()
        .all(|s| s.created && s.protected.is_none()));
    for n in &names {
        assert_eq!(target.snapshot_contents(n), src.snapshot_contents(n), "{n}");
    }
    assert_eq!(target.contents(), src.contents());
}

#[test]
fn header_bytes_follow_the_reference_layout() {
    let img = MemImage::new(0);
    let mut h = ImageV2Header::default();
    h.meta.insert("k".into(), "vv".into());
    let mut stream = Vec::new();
    export_image_v2(&img, &h, &mut stream, &NoProgress).unwrap();
    let mut want = b"rbd image v2\n".to_vec();
    for (t, v) in [(b'O', 22u64), (b'T', 61), (b'U', 4 << 20), (b'C', 1)] {
        want.push(t);
        want.extend_from_slice(&le64(8));
        want.extend_from_slice(&le64(v));
    }
    want.push(b'M');
    want.extend_from_slice(&le64(11));
    want.extend_from_slice(b"\x01\0\0\0k\x02\0\0\0vv");
    want.push(b'E');
    want.extend_from_slice(b"rbd image diffs v2\n");
    want.extend_from_slice(&le64(1));
    want.extend_from_slice(&Enc::v2().size(0).end());
    assert_eq!(stream, want);
}

#[test]
fn import_reads_protected_flags_and_skips_unknown_header_records() {
    let mut s = b"rbd image v2\n".to_vec();
    s.extend_from_slice(b"Q");
    s.extend_from_slice(&le64(2));
    s.extend_from_slice(b"??E");
    s.extend_from_slice(b"rbd image diffs v2\n");
    s.extend_from_slice(&le64(2));
    // Ceph 16's `p`: length 8, one byte.
    let d1 = Enc::v2()
        .name(b't', "s")
        .size(4)
        .raw(b"p")
        .raw(&le64(8))
        .raw(&[1])
        .w(0, &[1, 2])
        .end();
    s.extend_from_slice(&d1);
    s.extend_from_slice(&Enc::v2().name(b'f', "s").size(4).w(2, &[3]).end());
    let target = MemImage::new(0);
    let rep = import_image_v2(&s[..], &target, &NoProgress).unwrap();
    assert_eq!(rep.snapshots[0].protected, Some(true));
    assert_eq!(target.snapshot_contents("s").unwrap(), vec![1, 2, 0, 0]);
    assert_eq!(target.contents(), vec![1, 2, 3, 0]);
}

#[test]
fn import_rejects_a_broken_chain_and_a_v1_diff() {
    let mut s = b"rbd image v2\nE".to_vec();
    s.extend_from_slice(b"rbd image diffs v2\n");
    s.extend_from_slice(&le64(1));
    let bad_chain = [s.clone(), Enc::v2().name(b'f', "zz").size(1).end()].concat();
    let e = import_image_v2(&bad_chain[..], &MemImage::new(0), &NoProgress).unwrap_err();
    assert!(matches!(e, StreamError::Inconsistent { .. }), "{e}");
    let v1 = [s.clone(), Enc::v1().size(1).end()].concat();
    let e = import_image_v2(&v1[..], &MemImage::new(0), &NoProgress).unwrap_err();
    assert!(
        matches!(e, StreamError::BadBanner { offset, .. } if offset == s.len() as u64),
        "{e}"
    );
    let e = import_image_v2(&b"rbd image v1\n"[..], &MemImage::new(0), &NoProgress).unwrap_err();
    assert!(matches!(e, StreamError::BadBanner { offset: 0, .. }), "{e}");
}

#[test]
fn pull_reader_walks_header_and_each_diff() {
    use super::super::{ImageV2Reader, Record};
    let src = source();
    let mut stream = Vec::new();
    export_image_v2(&src, &header(), &mut stream, &NoProgress).unwrap();
    let mut r = ImageV2Reader::new(&stream[..]).unwrap();
    assert_eq!(r.header(), &header());
    assert_eq!(r.diffs_left(), 4);
    let mut ends = Vec::new();
    while let Some(mut d) = r.next_diff().unwrap() {
        let mut to = None;
        loop {
            match d.next_record().unwrap() {
                Record::ToSnap(n) => to = Some(n),
                Record::End => break,
                _ => {}
            }
        }
        ends.push(to);
    }
    let want = [Some("one"), Some("two"), Some("three"), None];
    assert_eq!(ends, want.map(|s| s.map(String::from)));
    assert_eq!(r.position(), stream.len() as u64);
}
