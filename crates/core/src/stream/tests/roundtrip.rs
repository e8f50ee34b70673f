//! Random extent lists through writer, reader and export/import.

use proptest::prelude::*;

use super::super::testimage::MemImage;
use super::super::{export_diff, import_diff, DiffFormat, DiffWriter, ImportOptions};
use super::{apply, decode_all, pattern};
use crate::image::Image;
use crate::progress::NoProgress;

#[derive(Debug, Clone)]
enum Op {
    Data(u64, Vec<u8>),
    Zero(u64, u64),
}

/// Ascending, non-overlapping ops inside `size`, byte-granular.
fn ops() -> impl Strategy<Value = (u64, Vec<Op>)> {
    let item = (0u64..9000, 1u64..12000, 0u8..3, any::<u64>());
    (1u64..60_000, proptest::collection::vec(item, 0..12)).prop_map(|(size, items)| {
        let mut at = 0;
        let mut out = Vec::new();
        for (gap, len, kind, seed) in items {
            let off = at + gap;
            if off >= size {
                break;
            }
            let len = len.min(size - off);
            out.push(match kind {
                0 => Op::Zero(off, len),
                1 => Op::Data(off, vec![0; len as usize]),
                _ => Op::Data(off, pattern(len as usize, seed)),
            });
            at = off + len;
        }
        (size, out)
    })
}

fn write_stream(format: DiffFormat, size: u64, ops: &[Op]) -> Vec<u8> {
    let mut w = DiffWriter::new(Vec::new(), format).unwrap();
    w.size(size).unwrap();
    for op in ops {
        match op {
            Op::Data(o, d) => w.data(*o, d).unwrap(),
            Op::Zero(o, l) => w.zero(*o, *l).unwrap(),
        }
    }
    w.finish().unwrap()
}

fn expected(base: &[u8], size: u64, ops: &[Op]) -> Vec<u8> {
    let mut img = base.to_vec();
    img.resize(size as usize, 0);
    for op in ops {
        match op {
            Op::Data(o, d) => img[*o as usize..*o as usize + d.len()].copy_from_slice(d),
            Op::Zero(o, l) => img[*o as usize..(*o + *l) as usize].fill(0),
        }
    }
    img
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn writer_reader_round_trip((size, ops) in ops(), v2 in any::<bool>(), seed in any::<u64>()) {
        let format = if v2 { DiffFormat::V2 } else { DiffFormat::V1 };
        let base = pattern(size as usize / 2, seed);
        let stream = write_stream(format, size, &ops);
        let (recs, end) = decode_all(&stream[..]).unwrap();
        prop_assert_eq!(end, stream.len() as u64);
        prop_assert_eq!(apply(&base, &recs), expected(&base, size, &ops));
    }

    #[test]
    fn import_applies_writer_streams((size, ops) in ops(), seed in any::<u64>()) {
        let base = pattern(size as usize / 2 + 1, seed);
        let stream = write_stream(DiffFormat::V1, size, &ops);
        let target = MemImage::with_data(base.clone());
        import_diff(&stream[..], &target, ImportOptions::default(), &NoProgress).unwrap();
        prop_assert_eq!(target.contents(), expected(&base, size, &ops));
    }

    #[test]
    fn export_import_round_trip(len in 0usize..50_000, seed in any::<u64>(), over in any::<bool>()) {
        let mut src = MemImage::with_data(pattern(len, seed));
        src.over_report = over;
        let mut stream = Vec::new();
        export_diff(&src, None, None, &mut stream, &NoProgress).unwrap();
        let target = MemImage::with_data(pattern(len / 3, !seed));
        // A full diff only carries allocated data: start from zeros.
        target.resize(0).unwrap();
        import_diff(&stream[..], &target, ImportOptions::default(), &NoProgress).unwrap();
        prop_assert_eq!(target.contents(), src.contents());
    }
}

#[test]
fn incremental_export_import_creates_the_snapshot() {
    let src = MemImage::with_data(pattern(40_000, 1));
    let snaps = src.snapshots().unwrap();
    snaps.create("s1").unwrap();
    src.write_at(5000, &[7; 300]).unwrap();
    src.write_zeroes(20_000, 9000).unwrap();
    src.resize(45_000).unwrap();
    src.write_at(44_000, &[1; 1000]).unwrap();
    snaps.create("s2").unwrap();
    src.write_at(0, &[9; 10]).unwrap(); // HEAD moves on; export the snapshot

    let target = MemImage::with_data(pattern(40_000, 1));
    target.snapshots().unwrap().create("s1").unwrap();
    let at_s2 = snaps.open_snapshot("s2").unwrap();
    let mut stream = Vec::new();
    export_diff(&*at_s2, Some("s1"), Some("s2"), &mut stream, &NoProgress).unwrap();
    let rep = import_diff(&stream[..], &target, ImportOptions::default(), &NoProgress).unwrap();
    assert!(rep.snapshot_created);
    assert_eq!(target.contents(), src.snapshot_contents("s2").unwrap());
    assert_eq!(target.snapshot_contents("s2"), src.snapshot_contents("s2"));
}

#[test]
fn export_of_large_image_splits_and_reads_ahead() {
    let len = 3 * (4 << 20) + 12345;
    let src = MemImage::with_data(pattern(len, 5));
    let mut stream = Vec::new();
    let rep = export_diff(&src, None, None, &mut stream, &NoProgress).unwrap();
    assert_eq!(rep.size, len as u64);
    let (recs, _) = decode_all(&stream[..]).unwrap();
    assert!(recs.iter().all(|(_, d)| d.len() as u64 <= 4 << 20));
    assert_eq!(apply(&[], &recs), src.contents());
}

#[test]
fn export_with_missing_from_snap_writes_nothing() {
    let src = MemImage::with_data(pattern(100, 5));
    let mut stream = Vec::new();
    assert!(export_diff(&src, Some("nope"), None, &mut stream, &NoProgress).is_err());
    assert!(stream.is_empty());
}
