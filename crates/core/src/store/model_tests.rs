//! Model-based test: random operations on a store image and on a Vec<u8>
//! must agree, and every diff applied to its base must give its target.

use super::*;
use crate::image::{Extent, ExtentKind, Image, Pool};
use proptest::prelude::*;

const CS: u64 = 4096;

#[derive(Debug, Clone)]
enum Op {
    Write { off: u64, len: usize, seed: u8 },
    Zero { off: u64, len: u64 },
    Resize { size: u64 },
    Snap,
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..40 * CS, 1..3 * CS as usize, any::<u8>())
            .prop_map(|(off, len, seed)| Op::Write { off, len, seed }),
        2 => (0..40 * CS, 1..20 * CS).prop_map(|(off, len)| Op::Zero { off, len }),
        1 => (0..48 * CS).prop_map(|size| Op::Resize { size }),
        1 => Just(Op::Snap),
        1 => Just(Op::Flush),
    ]
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    // Some chunks compressible, some not, some zero.
    (0..len)
        .map(|i| match seed % 3 {
            0 => (i as u8).wrapping_mul(31).wrapping_add(seed),
            1 => b"model"[i % 5],
            _ => ((i as u32).wrapping_mul(2654435761) >> 11) as u8 ^ seed,
        })
        .collect()
}

fn apply(img: &dyn Image, model: &mut Vec<u8>, op: &Op) {
    let size = model.len() as u64;
    match *op {
        Op::Write { off, len, seed } => {
            let len = (len as u64).min(size.saturating_sub(off)) as usize;
            if off < size && len > 0 {
                let data = pattern(len, seed);
                img.write_at(off, &data).unwrap();
                model[off as usize..off as usize + len].copy_from_slice(&data);
            }
        }
        Op::Zero { off, len } => {
            let len = len.min(size.saturating_sub(off));
            if off < size && len > 0 {
                img.write_zeroes(off, len).unwrap();
                model[off as usize..(off + len) as usize].fill(0);
            }
        }
        Op::Resize { size } => {
            img.resize(size).unwrap();
            model.resize(size as usize, 0);
        }
        Op::Snap | Op::Flush => img.flush().unwrap(),
    }
}

/// Applies the diff `from -> img` to `from` and returns the result.
fn patched(img: &dyn Image, from_name: &str, from: &[u8]) -> Vec<u8> {
    let size = img.size().unwrap();
    let mut out = from.to_vec();
    out.resize(size as usize, 0);
    let mut last_end = 0;
    let mut extents = Vec::<Extent>::new();
    img.changed_extents(Some(from_name), 0..size, &mut |e| {
        extents.push(e);
        Ok(())
    })
    .unwrap();
    for e in extents {
        assert!(
            e.offset >= last_end && e.len > 0 && e.end() <= size,
            "{e:?}"
        );
        last_end = e.end();
        let r = e.offset as usize..e.end() as usize;
        match e.kind {
            ExtentKind::Data => img.read_at(e.offset, &mut out[r]).unwrap(),
            ExtentKind::Zero => out[r].fill(0),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn store_image_matches_a_byte_model(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::init(dir.path(), InitOptions { chunk_size: CS as u32 }).unwrap();
        store.create("img", 32 * CS).unwrap();
        let img = store.open("img").unwrap();
        let mut model = vec![0u8; 32 * CS as usize];
        let mut snaps: Vec<(String, Vec<u8>)> = Vec::new();
        // What a crash now would leave: the last flushed/resized state.
        let mut published = model.clone();
        for (i, op) in ops.iter().enumerate() {
            apply(&*img, &mut model, op);
            if !matches!(op, Op::Write { .. } | Op::Zero { .. }) {
                published = model.clone();
            }
            if let Op::Snap = op {
                let name = format!("s{i}");
                img.snapshots().unwrap().create(&name).unwrap();
                snaps.push((name, model.clone()));
            }
        }
        let mut got = vec![0u8; model.len()];
        img.read_at(0, &mut got).unwrap();
        prop_assert_eq!(&got, &model);
        for (name, content) in &snaps {
            prop_assert_eq!(&patched(&*img, name, content), &model);
            let snap = store.open_read_only("img", Some(name)).unwrap();
            let mut got = vec![0u8; content.len()];
            snap.read_at(0, &mut got).unwrap();
            prop_assert_eq!(&got, content);
        }
        // Allocated extents from nothing reproduce the image from zeros.
        let mut from_nothing = vec![0u8; model.len()];
        img.changed_extents(None, 0..model.len() as u64, &mut |e| {
            if e.kind == ExtentKind::Data {
                let r = e.offset as usize..e.end() as usize;
                img.read_at(e.offset, &mut from_nothing[r]).unwrap();
            }
            Ok(())
        }).unwrap();
        prop_assert_eq!(&from_nothing, &model);
        // Unflushed writes at the end, then a "crash": the published HEAD stays.
        if model.len() >= 4096 {
            img.write_at(0, &pattern(4096, 1)).unwrap();
        }
        drop(img);
        drop(store);
        let store = LocalStore::open(dir.path()).unwrap();
        let head = store.open_read_only("img", None).unwrap();
        let mut got = vec![0u8; head.size().unwrap() as usize];
        head.read_at(0, &mut got).unwrap();
        prop_assert_eq!(&got, &published);
        let report = store.verify(&VerifyScope::Store, &crate::progress::NoProgress).unwrap();
        prop_assert!(report.is_ok());
    }
}
