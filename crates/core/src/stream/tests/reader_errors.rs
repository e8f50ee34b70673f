//! Every rejection, with the byte offset it names; and what must be accepted.

use super::super::{DiffReader, Record, StreamError};
use super::{decode_all, le32, le64, Enc};

fn err(bytes: &[u8]) -> StreamError {
    decode_all(bytes).expect_err("stream must be rejected")
}

#[test]
fn bad_banner_at_zero() {
    match err(b"rbd diff v3\ne") {
        StreamError::BadBanner { offset: 0, .. } => {}
        e => panic!("{e}"),
    }
}

#[test]
fn short_banner_prefix_is_truncated() {
    match err(b"rbd di") {
        StreamError::Truncated { offset: 6, .. } => {}
        e => panic!("{e}"),
    }
}

#[test]
fn unknown_tag_in_v1_names_its_offset() {
    let s = Enc::v1().size(10).raw(b"x").end();
    match err(&s) {
        StreamError::UnknownTag {
            offset: 21,
            tag: b'x',
        } => {}
        e => panic!("{e}"),
    }
}

#[test]
fn truncated_inside_a_record() {
    let s = Enc::v1().size(10).buf.clone();
    match err(&s[..17]) {
        StreamError::Truncated { offset: 17, .. } => {}
        e => panic!("{e}"),
    }
}

#[test]
fn truncated_inside_data() {
    let mut s = Enc::v1().size(100).w(0, &[1; 10]).buf.clone();
    s.truncate(s.len() - 4);
    let n = s.len() as u64;
    match err(&s) {
        StreamError::Truncated { offset, .. } if offset == n => {}
        e => panic!("{e}"),
    }
}

#[test]
fn missing_end_is_truncated() {
    let s = Enc::v1().size(100).buf.clone();
    match err(&s) {
        StreamError::Truncated { offset: 21, .. } => {}
        e => panic!("{e}"),
    }
}

#[test]
fn write_beyond_size_names_the_record() {
    let s = Enc::v1().size(100).w(90, &[1; 20]).end();
    match err(&s) {
        StreamError::BeyondSize {
            offset: 21,
            start: 90,
            len: 20,
            size: 100,
            ..
        } => {}
        e => panic!("{e}"),
    }
    let s = Enc::v1().size(100).z(99, 2).end();
    assert!(matches!(
        err(&s),
        StreamError::BeyondSize { offset: 21, .. }
    ));
}

#[test]
fn overflowing_extent_is_malformed() {
    let s = Enc::v1().z(u64::MAX, 2).end();
    assert!(matches!(err(&s), StreamError::Malformed { offset: 12, .. }));
}

#[test]
fn snapshot_name_over_4096_bytes() {
    let mut s = Enc::v1().buf.clone();
    s.push(b'f');
    s.extend_from_slice(&le32(4097));
    s.extend_from_slice(&[b'a'; 4097]);
    match err(&s) {
        StreamError::NameTooLong {
            offset: 12,
            len: 4097,
        } => {}
        e => panic!("{e}"),
    }
    let ok = Enc::v1().name(b'f', &"a".repeat(4096)).end();
    assert!(decode_all(&ok[..]).is_ok());
}

#[test]
fn accepts_any_order_byte_extents_and_missing_header() {
    let s = Enc::v1()
        .w(107, &[5; 3])
        .z(0, 1)
        .size(200)
        .name(b't', "b")
        .end();
    let (recs, _) = decode_all(&s[..]).unwrap();
    assert_eq!(recs.len(), 4);
    assert_eq!(
        recs[0].0,
        Record::Data {
            offset: 107,
            len: 3
        }
    );
}

#[test]
fn trailing_garbage_after_end_is_not_read() {
    let mut s = Enc::v1().size(1).end();
    let end = s.len() as u64;
    s.extend_from_slice(b"garbage\xff");
    let (_, pos) = decode_all(&s[..]).unwrap();
    assert_eq!(pos, end);
}

#[test]
fn v2_unknown_tags_are_skipped_by_length() {
    let s = Enc::v2().raw(b"X").raw(&le64(3)).raw(b"abc").size(5).end();
    let (recs, _) = decode_all(&s[..]).unwrap();
    assert_eq!(recs[0].0, Record::Size(5));
}

#[test]
fn v2_protected_record_as_ceph_16_writes_it() {
    // Length field says 8, payload is one byte.
    let s = Enc::v2().raw(b"p").raw(&le64(8)).raw(&[1]).size(5).end();
    let (recs, _) = decode_all(&s[..]).unwrap();
    assert_eq!(recs[0].0, Record::Protected(true));
    assert_eq!(recs[1].0, Record::Size(5));
}

#[test]
fn p_is_unknown_in_v1() {
    let s = Enc::v1().raw(b"p\x01").end();
    assert!(matches!(
        err(&s),
        StreamError::UnknownTag {
            offset: 12,
            tag: b'p'
        }
    ));
}

#[test]
fn unread_data_is_skipped_and_end_repeats() {
    let s = Enc::v1().w(0, &[1; 100]).end();
    let mut r = DiffReader::new(&s[..]).unwrap();
    assert_eq!(
        r.next_record().unwrap(),
        Record::Data {
            offset: 0,
            len: 100
        }
    );
    let mut b = [0u8; 10];
    assert_eq!(r.read_data(&mut b).unwrap(), 10);
    assert_eq!(r.data_remaining(), 90);
    assert_eq!(r.next_record().unwrap(), Record::End);
    assert_eq!(r.next_record().unwrap(), Record::End);
}
