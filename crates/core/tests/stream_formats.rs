//! The stream formats through the public API only: hand-built bytes (from
//! docs/streams.md) against the writer, the reader and merge_diff.

use blockback_core::stream::{merge_diff, DiffFormat, DiffReader, DiffWriter, Record, StreamError};

fn rec_w(off: u64, data: &[u8]) -> Vec<u8> {
    let mut v = vec![b'w'];
    v.extend_from_slice(&off.to_le_bytes());
    v.extend_from_slice(&(data.len() as u64).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn rec_s(size: u64) -> Vec<u8> {
    let mut v = vec![b's'];
    v.extend_from_slice(&size.to_le_bytes());
    v
}

fn rec_name(tag: u8, name: &str) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(name.len() as u32).to_le_bytes());
    v.extend_from_slice(name.as_bytes());
    v
}

fn stream(records: &[Vec<u8>]) -> Vec<u8> {
    let mut v = b"rbd diff v1\n".to_vec();
    records.iter().for_each(|r| v.extend_from_slice(r));
    v.push(b'e');
    v
}

#[test]
fn writer_output_matches_hand_built_bytes() {
    let mut w = DiffWriter::new(Vec::new(), DiffFormat::V1).unwrap();
    w.from_snap("s1").unwrap();
    w.size(4096).unwrap();
    w.data(107, b"hello").unwrap();
    let got = w.finish().unwrap();
    let want = stream(&[rec_name(b'f', "s1"), rec_s(4096), rec_w(107, b"hello")]);
    assert_eq!(got, want);
}

#[test]
fn reader_yields_records_and_bounded_payload_pieces() {
    let s = stream(&[rec_s(100), rec_w(10, &[7; 50])]);
    let mut r = DiffReader::new(&s[..]).unwrap();
    assert_eq!(r.format(), DiffFormat::V1);
    assert_eq!(r.next_record().unwrap(), Record::Size(100));
    assert_eq!(
        r.next_record().unwrap(),
        Record::Data {
            offset: 10,
            len: 50
        }
    );
    let mut piece = [0u8; 16];
    let mut total = 0;
    loop {
        let n = r.read_data(&mut piece).unwrap();
        if n == 0 {
            break;
        }
        assert!(piece[..n].iter().all(|b| *b == 7));
        total += n;
    }
    assert_eq!(total, 50);
    assert_eq!(r.next_record().unwrap(), Record::End);
    assert_eq!(r.position(), s.len() as u64);
}

#[test]
fn reader_error_names_the_offset() {
    let s = stream(&[rec_s(10), rec_w(8, &[1; 4])]);
    let mut r = DiffReader::new(&s[..]).unwrap();
    r.next_record().unwrap();
    let e = r.next_record().unwrap_err();
    assert!(
        matches!(e, StreamError::BeyondSize { offset: 21, .. }),
        "{e}"
    );
    assert!(e.to_string().starts_with("byte 21:"), "{e}");
}

#[test]
fn merge_of_hand_built_diffs() {
    let a = stream(&[rec_name(b't', "s2"), rec_s(8), rec_w(0, &[1; 8])]);
    let b = stream(&[
        rec_name(b'f', "s2"),
        rec_name(b't', "s3"),
        rec_s(8),
        rec_w(2, &[2; 2]),
    ]);
    let mut out = Vec::new();
    merge_diff(&a[..], &b[..], &mut out).unwrap();
    let want = stream(&[
        rec_name(b't', "s3"),
        rec_s(8),
        rec_w(0, &[1; 2]),
        rec_w(2, &[2; 2]),
        rec_w(4, &[1; 4]),
    ]);
    assert_eq!(out, want);
}
