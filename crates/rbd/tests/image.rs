//! Images: create/open/remove, I/O, resize, snapshots and errors.

mod common;

use std::sync::Arc;
use std::thread;

use blockback_core::image::{Image, ImageError, Pool};
use blockback_rbd::{features, CreateOptions};
use common::*;

#[test]
fn missing_image_is_not_found_naming_pool_and_image() {
    let Some(pool) = pool() else { return };
    let name = unique("missing");
    let err = pool.open(&name).map(|_| ()).unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("volumes/{name}")),
        "{err}"
    );
    let err = pool.remove(&name).unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(!pool.exists(&name).unwrap());
}

#[test]
fn create_lists_refuses_duplicates_and_defaults_to_fast_diff() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "create", 8 * MIB);
    assert!(pool.list().unwrap().contains(&img.name));
    assert!(pool.exists(&img.name).unwrap());
    let err = pool.create(&img.name, MIB).unwrap_err();
    assert!(matches!(err, ImageError::Exists { .. }), "{err}");
    assert!(err.to_string().contains(&img.name), "{err}");
    let opened = pool.open_image(&img.name).unwrap();
    let f = opened.features().unwrap();
    assert_eq!(f & features::FAST_DIFF, features::FAST_DIFF, "{f:#x}");
    assert_eq!(opened.object_size().unwrap(), 4 * MIB);
    assert_eq!(opened.size().unwrap(), 8 * MIB);
    // A new image reads as zeros.
    assert_eq!(read(&opened, 3 * MIB, 4096), vec![0; 4096]);
}

#[test]
fn bad_names_are_invalid() {
    let Some(pool) = pool() else { return };
    for bad in ["", "a/b", "a@b"] {
        let err = pool.create(bad, MIB).unwrap_err();
        assert!(matches!(err, ImageError::Invalid { .. }), "{bad:?}: {err}");
    }
}

#[test]
fn write_read_round_trip_and_range_checks() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "rw", 8 * MIB);
    let h = img.open();
    let data = pattern(3, 300_000);
    // Crosses the 4 MiB object boundary on purpose.
    let off = 4 * MIB - 1000;
    h.write_at(off, &data).unwrap();
    h.flush().unwrap();
    assert_eq!(read(h.as_ref(), off, data.len()), data);
    let mut buf = vec![0; 10];
    let err = h.read_at(8 * MIB - 5, &mut buf).unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
    let err = h.write_at(8 * MIB - 5, &buf).unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
    // Visible through a fresh handle too.
    let other = pool.open(&img.name).unwrap();
    assert_eq!(read(other.as_ref(), off, data.len()), data);
}

#[test]
fn write_zeroes_is_exact_even_below_64k() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "zero", 4 * MIB);
    let h = img.open();
    let data = pattern(9, 64 * 1024);
    h.write_at(0, &data).unwrap();
    // 100 bytes: a discard this small would be a no-op on RBD.
    h.write_zeroes(1000, 100).unwrap();
    let got = read(h.as_ref(), 0, data.len());
    assert_eq!(&got[..1000], &data[..1000]);
    assert!(got[1000..1100].iter().all(|&b| b == 0));
    assert_eq!(&got[1100..], &data[1100..]);
    let err = h.write_zeroes(4 * MIB - 1, 2).unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
}

#[test]
fn resize_grows_and_shrinks() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "resize", 4 * MIB);
    let h = img.open();
    h.write_at(4 * MIB - 10, &[0xAB; 10]).unwrap();
    h.resize(12 * MIB).unwrap();
    assert_eq!(h.size().unwrap(), 12 * MIB);
    assert_eq!(read(h.as_ref(), 4 * MIB - 10, 10), vec![0xAB; 10]);
    assert_eq!(read(h.as_ref(), 11 * MIB, 10), vec![0; 10]);
    h.resize(MIB).unwrap();
    assert_eq!(h.size().unwrap(), MIB);
    // Growing again must not resurrect the old bytes.
    h.resize(4 * MIB).unwrap();
    assert_eq!(read(h.as_ref(), 4 * MIB - 10, 10), vec![0; 10]);
}

#[test]
fn threads_share_one_handle() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "threads", 16 * MIB);
    let h: Arc<dyn Image> = Arc::from(img.open());
    let workers: Vec<_> = (0..4u8)
        .map(|t| {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                for i in 0..8u64 {
                    let off = u64::from(t) * 4 * MIB + i * 256 * 1024;
                    let data = pattern(t.wrapping_mul(16).wrapping_add(i as u8), 100_000);
                    h.write_at(off, &data).unwrap();
                    assert_eq!(read(h.as_ref(), off, data.len()), data);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn aio_batches_read_and_write() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "aio", 8 * MIB);
    let h = pool.open_image(&img.name).unwrap();
    let chunks: Vec<Vec<u8>> = (0..8u8).map(|i| pattern(i, 65536)).collect();
    let writes: Vec<(u64, &[u8])> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u64 * MIB, c.as_slice()))
        .collect();
    h.write_many(&writes).unwrap();
    let mut bufs: Vec<Vec<u8>> = (0..8).map(|_| vec![0; 65536]).collect();
    let mut reads: Vec<(u64, &mut [u8])> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, b)| (i as u64 * MIB, b.as_mut_slice()))
        .collect();
    h.read_many(&mut reads).unwrap();
    assert_eq!(bufs, chunks);
    let mut past_end = [0u8; 10];
    let err = h
        .read_many(&mut [(8 * MIB - 1, &mut past_end[..])])
        .unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
}

#[test]
fn remove_while_open_elsewhere_is_busy() {
    let Some(pool) = pool() else { return };
    let img = TempImage::create(&pool, "busy", MIB);
    let holder = img.open();
    holder.write_at(0, b"x").unwrap();
    let err = pool.remove(&img.name).unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(err.to_string().contains(&img.name), "{err}");
    // Also when the other handle belongs to another connection.
    drop(holder);
    let other_conn = admin().unwrap().open_pool(POOL).unwrap();
    let holder = other_conn.open(&img.name).unwrap();
    assert!(pool.remove(&img.name).unwrap_err().is_busy());
    drop(holder);
    pool.remove(&img.name).unwrap();
    assert!(!pool.exists(&img.name).unwrap());
}

#[test]
fn striped_images_can_be_created() {
    let Some(pool) = pool() else { return };
    let name = unique("striped");
    let opts = CreateOptions {
        stripe_unit: Some(64 * 1024),
        stripe_count: Some(4),
        ..CreateOptions::default()
    };
    pool.create_with(&name, 16 * MIB, &opts).unwrap();
    let img = TempImage::adopt(&pool, name);
    let h = pool.open_image(&img.name).unwrap();
    assert_ne!(h.features().unwrap() & features::STRIPINGV2, 0);
    let data = pattern(5, 1_000_000);
    h.write_at(123_456, &data).unwrap();
    assert_eq!(read(&h, 123_456, data.len()), data);
    let err = pool
        .create_with(
            &unique("badstripe"),
            MIB,
            &CreateOptions {
                stripe_unit: Some(3000),
                stripe_count: Some(2),
                ..CreateOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
}

#[test]
fn listing_grows_past_the_first_buffer() {
    let Some(cluster) = admin() else { return };
    // The other pool, so parallel tests' images do not change the count.
    let pool = cluster.open_pool(OTHER_POOL).unwrap();
    let before = pool.list().unwrap().len();
    // More than rbd_list2's first buffer of 64 entries.
    let imgs: Vec<_> = (0..70)
        .map(|_| TempImage::create(&pool, "many", MIB))
        .collect();
    let names = pool.list().unwrap();
    assert!(names.len() >= before + imgs.len(), "{} names", names.len());
    assert!(imgs.iter().all(|i| names.contains(&i.name)));
}
