//! import_diff's target checks, truncation handling and snapshot-less targets.

use std::sync::Mutex;

use super::super::testimage::MemImage;
use super::super::{export_diff, import_diff, ImportOptions, StreamError};
use super::{pattern, Enc};
use crate::image::Image;
use crate::progress::{NoProgress, Progress};

#[derive(Default)]
struct Notes(Mutex<Vec<String>>);

impl Progress for Notes {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
    fn note(&self, m: &str) {
        self.0.lock().unwrap().push(m.to_string());
    }
}

const FORCE: ImportOptions = ImportOptions { force: true };
const SAFE: ImportOptions = ImportOptions { force: false };

/// A target at snapshot `a`, and a stream a→b that changes it.
fn setup() -> (MemImage, Vec<u8>, Vec<u8>) {
    let target = MemImage::with_data(pattern(50_000, 2));
    target.snapshots().unwrap().create("a").unwrap();
    let src = MemImage::with_data(pattern(50_000, 2));
    let snaps = src.snapshots().unwrap();
    snaps.create("a").unwrap();
    src.write_at(1000, &pattern(30_000, 9)[..]).unwrap();
    src.write_zeroes(40_000, 5000).unwrap();
    snaps.create("b").unwrap();
    let mut stream = Vec::new();
    let at_b = snaps.open_snapshot("b").unwrap();
    export_diff(&*at_b, Some("a"), Some("b"), &mut stream, &NoProgress).unwrap();
    (target, stream, src.contents())
}

fn refused(r: Result<impl std::fmt::Debug, StreamError>) -> String {
    match r {
        Err(StreamError::Refused { why, .. }) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn refuses_missing_from_snapshot_without_writing() {
    let (_, stream, _) = setup();
    let target = MemImage::with_data(pattern(50_000, 2));
    let why = refused(import_diff(&stream[..], &target, SAFE, &NoProgress));
    assert!(
        why.contains("a (the stream's from-snapshot) does not exist"),
        "{why}"
    );
    assert_eq!(target.write_count(), 0);
}

#[test]
fn refuses_existing_to_snapshot() {
    let (target, stream, _) = setup();
    target.snapshots().unwrap().create("b").unwrap();
    let why = refused(import_diff(&stream[..], &target, SAFE, &NoProgress));
    assert!(
        why.contains("b (the stream's end snapshot) already exists"),
        "{why}"
    );
    assert_eq!(target.write_count(), 0);
}

#[test]
fn refuses_a_head_that_changed_since_the_from_snapshot() {
    let (target, stream, _) = setup();
    target.write_at(49_000, &[1]).unwrap();
    let writes = target.write_count();
    let why = refused(import_diff(&stream[..], &target, SAFE, &NoProgress));
    assert!(why.contains("HEAD changed since snapshot a"), "{why}");
    assert_eq!(target.write_count(), writes);
    // force applies anyway (and keeps the unrelated change).
    import_diff(&stream[..], &target, FORCE, &NoProgress).unwrap();
    assert_eq!(target.contents()[49_000], 1);
}

#[test]
fn over_reporting_backend_with_unchanged_head_is_accepted() {
    let (mut target, stream, want) = setup();
    target.over_report = true; // reports every block as changed
    import_diff(&stream[..], &target, SAFE, &NoProgress).unwrap();
    assert_eq!(target.contents(), want);
}

#[test]
fn truncated_stream_rolls_back_and_can_be_applied_again() {
    let (target, stream, want) = setup();
    let before = target.contents();
    let cut = stream.len() - 200; // inside the data
    match import_diff(&stream[..cut], &target, SAFE, &NoProgress) {
        Err(StreamError::ImportTruncated {
            offset,
            consequence,
        }) => {
            assert_eq!(offset, cut as u64);
            assert!(
                consequence.contains("rolled back to snapshot a"),
                "{consequence}"
            );
            assert!(consequence.contains("no end snapshot"), "{consequence}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(target.snapshot_names(), vec!["a".to_string()]);
    assert_eq!(target.contents(), before);
    let rep = import_diff(&stream[..], &target, SAFE, &NoProgress).unwrap();
    assert!(rep.snapshot_created);
    assert_eq!(target.contents(), want);
}

#[test]
fn truncated_banner_is_an_import_truncation() {
    let (target, stream, _) = setup();
    let e = import_diff(&stream[..5], &target, SAFE, &NoProgress).unwrap_err();
    assert!(
        matches!(e, StreamError::ImportTruncated { offset: 5, .. }),
        "{e}"
    );
    assert_eq!(target.write_count(), 0);
}

#[test]
fn truncated_forced_import_leaves_partial_writes_and_reapplies() {
    let (target, stream, want) = setup();
    let cut = stream.len() - 200;
    let e = import_diff(&stream[..cut], &target, FORCE, &NoProgress).unwrap_err();
    assert!(
        e.to_string().contains(&format!("truncated at byte {cut}")),
        "{e}"
    );
    assert!(e.to_string().contains("partial writes remain"), "{e}");
    import_diff(&stream[..], &target, FORCE, &NoProgress).unwrap();
    assert_eq!(target.contents(), want);
}

#[test]
fn target_without_snapshots_needs_force_for_from_and_ignores_to() {
    let (_, stream, want) = setup();
    let file = MemImage::with_data(pattern(50_000, 2)).without_snapshots();
    let why = refused(import_diff(&stream[..], &file, SAFE, &NoProgress));
    assert!(why.contains("has no snapshots"), "{why}");
    let notes = Notes::default();
    let rep = import_diff(&stream[..], &file, FORCE, &notes).unwrap();
    assert!(!rep.snapshot_created);
    assert_eq!(file.contents(), want);
    let notes = notes.0.lock().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("end snapshot b is not created")),
        "{notes:?}"
    );
}

#[test]
fn to_snapshot_alone_on_a_file_is_a_note() {
    let file = MemImage::new(10).without_snapshots();
    let s = Enc::v1().name(b't', "x").size(10).w(0, &[3; 10]).end();
    let rep = import_diff(&s[..], &file, SAFE, &NoProgress).unwrap();
    assert_eq!(rep.to_snap.as_deref(), Some("x"));
    assert_eq!(file.contents(), vec![3; 10]);
}

#[test]
fn overlapping_unordered_records_apply_in_stream_order() {
    let target = MemImage::new(20_000);
    let mut e = Enc::v1();
    for i in 0..40u8 {
        e.w(0, &vec![i; 10_000]);
    }
    e.z(5000, 10).w(5005, &[200; 2]);
    let s = e.end();
    import_diff(&s[..], &target, SAFE, &NoProgress).unwrap();
    let mut want = vec![39u8; 10_000];
    want.resize(20_000, 0);
    want[5000..5010].fill(0);
    want[5005..5007].fill(200);
    assert_eq!(target.contents(), want);
}

#[test]
fn write_errors_are_reported() {
    let target = MemImage::new(100);
    let s = Enc::v1().w(90, &[1; 20]).end(); // no `s`: the target refuses
    let e = import_diff(&s[..], &target, SAFE, &NoProgress).unwrap_err();
    assert!(matches!(e, StreamError::Image(_)), "{e}");
}

#[test]
fn late_from_record_is_refused() {
    let target = MemImage::new(100);
    target.snapshots().unwrap().create("a").unwrap();
    let s = Enc::v1().w(0, &[1; 2]).name(b'f', "a").end();
    let why = refused(import_diff(&s[..], &target, SAFE, &NoProgress));
    assert!(why.contains("comes after data"), "{why}");
}

mod truncation_property {
    use proptest::prelude::*;

    use super::super::super::{import_diff, StreamError};
    use super::{setup, NoProgress, SAFE};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Wherever the stream is cut, the import fails naming the cut,
        /// leaves the target as it was, and the full stream then applies.
        #[test]
        fn any_cut_fails_cleanly_and_reapplies(cut in any::<prop::sample::Index>()) {
            let (target, stream, want) = setup();
            let before = target.contents();
            let cut = cut.index(stream.len());
            match import_diff(&stream[..cut], &target, SAFE, &NoProgress) {
                Err(StreamError::ImportTruncated { offset, .. }) => prop_assert_eq!(offset, cut as u64),
                other => prop_assert!(false, "cut {}: {:?}", cut, other),
            }
            prop_assert_eq!(target.contents(), before);
            prop_assert_eq!(target.snapshot_names(), vec!["a".to_string()]);
            import_diff(&stream[..], &target, SAFE, &NoProgress).unwrap();
            prop_assert_eq!(target.contents(), want);
        }
    }
}
