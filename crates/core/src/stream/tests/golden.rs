//! Byte-exact streams from the writer against hand-built ones.

use super::super::format::MAX_RECORD;
use super::super::{DiffFormat, DiffWriter, Record};
use super::{decode_all, le32, le64, Enc};

#[test]
fn v1_full_header_and_records_byte_exact() {
    let mut w = DiffWriter::new(Vec::new(), DiffFormat::V1).unwrap();
    w.from_snap("a").unwrap();
    w.to_snap("bc").unwrap();
    w.size(8192).unwrap();
    w.data(5, &[1, 2, 3]).unwrap();
    w.zero(4096, 10).unwrap();
    let got = w.finish().unwrap();
    let mut want = b"rbd diff v1\n".to_vec();
    want.extend_from_slice(b"f");
    want.extend_from_slice(&le32(1));
    want.extend_from_slice(b"a");
    want.extend_from_slice(b"t");
    want.extend_from_slice(&le32(2));
    want.extend_from_slice(b"bc");
    want.extend_from_slice(b"s");
    want.extend_from_slice(&le64(8192));
    want.extend_from_slice(b"w");
    want.extend_from_slice(&le64(5));
    want.extend_from_slice(&le64(3));
    want.extend_from_slice(&[1, 2, 3]);
    want.extend_from_slice(b"z");
    want.extend_from_slice(&le64(4096));
    want.extend_from_slice(&le64(10));
    want.extend_from_slice(b"e");
    assert_eq!(got, want);
}

#[test]
fn v1_head_export_has_only_size() {
    let mut w = DiffWriter::new(Vec::new(), DiffFormat::V1).unwrap();
    w.size(0).unwrap();
    let got = w.finish().unwrap();
    assert_eq!(got, Enc::v1().size(0).end());
}

#[test]
fn v2_records_carry_lengths_byte_exact() {
    let mut w = DiffWriter::new(Vec::new(), DiffFormat::V2).unwrap();
    w.to_snap("s1").unwrap();
    w.size(4096).unwrap();
    w.protected(true).unwrap();
    w.data(0, &[9; 7]).unwrap();
    w.zero(100, 1).unwrap();
    let got = w.finish().unwrap();
    let mut want = b"rbd diff v2\n".to_vec();
    want.extend_from_slice(b"t");
    want.extend_from_slice(&le64(6));
    want.extend_from_slice(&le32(2));
    want.extend_from_slice(b"s1");
    want.extend_from_slice(b"s");
    want.extend_from_slice(&le64(8));
    want.extend_from_slice(&le64(4096));
    want.extend_from_slice(b"p");
    want.extend_from_slice(&le64(1));
    want.push(1);
    want.extend_from_slice(b"w");
    want.extend_from_slice(&le64(23));
    want.extend_from_slice(&le64(0));
    want.extend_from_slice(&le64(7));
    want.extend_from_slice(&[9; 7]);
    want.extend_from_slice(b"z");
    want.extend_from_slice(&le64(16));
    want.extend_from_slice(&le64(100));
    want.extend_from_slice(&le64(1));
    want.extend_from_slice(b"e");
    assert_eq!(got, want);
}

#[test]
fn zero_blocks_inside_data_become_z_records() {
    let mut data = vec![0u8; 3 * 4096];
    data[4096] = 7;
    let mut w = DiffWriter::new(Vec::new(), DiffFormat::V1).unwrap();
    w.size(3 * 4096).unwrap();
    w.data(0, &data).unwrap();
    let got = w.finish().unwrap();
    let mut block = vec![0u8; 4096];
    block[0] = 7;
    let want = Enc::v1()
        .size(3 * 4096)
        .z(0, 4096)
        .w(4096, &block)
        .z(8192, 4096)
        .end();
    assert_eq!(got, want);
}

#[test]
fn records_split_at_4mib_boundaries() {
    let start = MAX_RECORD - 5;
    let data = vec![1u8; (MAX_RECORD + 10) as usize];
    let mut w = DiffWriter::new(Vec::new(), DiffFormat::V1).unwrap();
    w.data(start, &data).unwrap();
    w.zero(3 * MAX_RECORD - 1, MAX_RECORD + 2).unwrap();
    let (recs, _) = decode_all(&w.finish().unwrap()[..]).unwrap();
    let extents: Vec<Record> = recs.into_iter().map(|r| r.0).collect();
    let m = MAX_RECORD;
    let want = vec![
        Record::Data {
            offset: start,
            len: 5,
        },
        Record::Data { offset: m, len: m },
        Record::Data {
            offset: 2 * m,
            len: 5,
        },
        Record::Zero {
            offset: 3 * m - 1,
            len: 1,
        },
        Record::Zero {
            offset: 3 * m,
            len: m,
        },
        Record::Zero {
            offset: 4 * m,
            len: 1,
        },
    ];
    assert_eq!(extents, want);
}

#[test]
fn writer_rejects_misuse() {
    let mut w = DiffWriter::new(Vec::new(), DiffFormat::V1).unwrap();
    assert!(w.protected(true).is_err(), "p is v2 only");
    assert!(w.to_snap(&"x".repeat(4097)).is_err());
    w.zero(100, 10).unwrap();
    assert!(w.zero(105, 1).is_err(), "descending");
    assert!(w.size(5).is_err(), "header after data");
}
