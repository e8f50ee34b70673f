//! The copy-on-write view against a plain model: any mix of writes,
//! zeroings and copy-ups reads like the same operations on one buffer,
//! the base is never written, and a saved map reopens to the same view.

use super::*;
use crate::image::file::FileImage;
use crate::image::ExtentKind;
use proptest::prelude::*;

const SIZE: u64 = 64 * 1024 + 1000;
const BLOCK: u64 = 4096;

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    Zero(u64, u64),
    Fill(u64),
    Save,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..SIZE, proptest::collection::vec(any::<u8>(), 1..9000)).prop_map(|(o, mut d)| {
            d.truncate((SIZE - o) as usize);
            Op::Write(o, d)
        }),
        (0..SIZE, 1u64..9000).prop_map(|(o, l)| Op::Zero(o, l.min(SIZE - o))),
        (0..SIZE.div_ceil(BLOCK)).prop_map(Op::Fill),
        Just(Op::Save),
    ]
}

struct Fixture {
    dir: tempfile::TempDir,
    base_bytes: Vec<u8>,
}

impl Fixture {
    fn new(seed: u8) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = FileImage::create(dir.path().join("base"), SIZE).unwrap();
        // Data with a hole in the middle.
        let mut bytes = vec![0u8; SIZE as usize];
        for (i, b) in bytes.iter_mut().enumerate() {
            if !(20_000..40_000).contains(&i) {
                *b = (i as u8).wrapping_mul(31).wrapping_add(seed) | 1;
            }
        }
        base.write_at(0, &bytes[..20_000]).unwrap();
        base.write_at(40_000, &bytes[40_000..]).unwrap();
        FileImage::create(dir.path().join("top"), SIZE).unwrap();
        Fixture {
            dir,
            base_bytes: bytes,
        }
    }

    fn open(&self, map: BlockMap, starts_zero: bool) -> CowImage {
        let base: Arc<dyn Image> =
            Arc::new(FileImage::open(self.dir.path().join("base"), false).unwrap());
        let top: Arc<dyn Image> =
            Arc::new(FileImage::open(self.dir.path().join("top"), true).unwrap());
        let store = FileMapStore::new(self.dir.path().join("map"));
        CowImage::new(base, top, map, starts_zero, Some(Box::new(store))).unwrap()
    }

    fn saved_map(&self) -> BlockMap {
        let bytes = FileMapStore::new(self.dir.path().join("map"))
            .load()
            .unwrap()
            .unwrap_or_else(|| BlockMap::new(SIZE, BLOCK).encode());
        BlockMap::decode(SIZE, BLOCK, &bytes).unwrap()
    }

    fn read_all(image: &dyn Image) -> Vec<u8> {
        let mut buf = vec![0u8; SIZE as usize];
        image.read_at(0, &mut buf).unwrap();
        buf
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reads_like_the_model_and_never_writes_the_base(ops in proptest::collection::vec(op(), 1..25), seed in any::<u8>()) {
        let f = Fixture::new(seed);
        let cow = f.open(BlockMap::new(SIZE, BLOCK), true);
        let mut model = f.base_bytes.clone();
        let mut saved = model.clone();
        for op in &ops {
            match op {
                Op::Write(o, d) => {
                    cow.write_at(*o, d).unwrap();
                    model[*o as usize..*o as usize + d.len()].copy_from_slice(d);
                }
                Op::Zero(o, l) => {
                    cow.write_zeroes(*o, *l).unwrap();
                    model[*o as usize..(*o + *l) as usize].fill(0);
                }
                Op::Fill(i) => {
                    let has_data = !(20_000..40_000).contains(&(i * BLOCK))
                        || !(20_000..40_000).contains(&((i + 1) * BLOCK - 1));
                    cow.fill(*i, has_data).unwrap();
                }
                Op::Save => {
                    cow.save_map().unwrap();
                    saved = model.clone();
                }
            }
            let mut probe = vec![0u8; 3000];
            let at = (probe.len() as u64 * 7) % (SIZE - 3000);
            cow.read_at(at, &mut probe).unwrap();
            prop_assert_eq!(&probe[..], &model[at as usize..at as usize + 3000]);
        }
        prop_assert_eq!(Fixture::read_all(&cow), model.clone());
        // Allocated extents cover every non-zero byte of the view.
        let mut covered = vec![false; SIZE as usize];
        cow.changed_extents(None, 0..SIZE, &mut |e| {
            if e.kind == ExtentKind::Data {
                covered[e.offset as usize..e.end() as usize].fill(true);
            }
            Ok(())
        }).unwrap();
        prop_assert!(model.iter().zip(&covered).all(|(b, c)| *b == 0 || *c));
        // Reopened on the map saved last (as after a crash), blocks it
        // does not name read the base; blocks it names hold at least what
        // they held at that save (later writes may have landed too).
        let map = f.saved_map();
        let reopened = f.open(f.saved_map(), false);
        let view = Fixture::read_all(&reopened);
        for i in 0..map.blocks() {
            let r = map.range(i);
            let (a, b) = (r.start as usize, r.end as usize);
            if !map.is_set(i) {
                prop_assert_eq!(&view[a..b], &f.base_bytes[a..b], "block {}", i);
            } else if saved[a..b] != view[a..b] {
                prop_assert_eq!(&view[a..b], &model[a..b], "block {}", i);
            }
        }
        drop(reopened);
        cow.save_map().unwrap();
        drop(cow);
        let base = FileImage::open(f.dir.path().join("base"), false).unwrap();
        prop_assert_eq!(Fixture::read_all(&base), f.base_bytes.clone());
        let reopened = f.open(f.saved_map(), false);
        prop_assert_eq!(Fixture::read_all(&reopened), model);
    }
}

#[test]
fn maps_round_trip_and_refuse_other_shapes() {
    let map = BlockMap::new(1000, 7);
    for i in [0, 5, 63, 64, 142] {
        assert!(map.set(i));
        assert!(!map.set(i));
    }
    let bytes = map.encode();
    let back = BlockMap::decode(1000, 7, &bytes).unwrap();
    assert_eq!(back.count(), 5);
    assert!(back.is_set(142) && !back.is_set(141));
    assert!(BlockMap::decode(1000, 8, &bytes[..8]).is_none());
    assert!(BlockMap::decode(2000, 7, &bytes).is_none());
    let mut stray = bytes.clone();
    *stray.last_mut().unwrap() = 0x80;
    assert!(
        BlockMap::decode(1000, 7, &stray).is_none(),
        "a bit beyond the last block"
    );
}

#[test]
fn copy_up_of_zero_blocks_into_a_new_top_writes_nothing() {
    let f = Fixture::new(1);
    let cow = f.open(BlockMap::new(SIZE, BLOCK), true);
    // Block 6 (24576..28672) is inside the base's hole.
    cow.fill(6, true).unwrap();
    cow.save_map().unwrap();
    let top = FileImage::open(f.dir.path().join("top"), false).unwrap();
    let mut any = false;
    top.changed_extents(None, 0..SIZE, &mut |_| {
        any = true;
        Ok(())
    })
    .unwrap();
    assert!(!any, "the top stayed empty");
    assert!(cow.map().is_set(6));
}
