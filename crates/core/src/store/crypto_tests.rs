//! Encrypted stores: round trips, no plaintext on disk, tampering, keys.

use super::tests::{random, CS};
use super::*;
use crate::crypto::{Argon2Params, Cipher, Credential, CryptoError, GivenKeys};
use crate::image::{ImageError, Pool};
use crate::progress::NoProgress;
use zeroize::Zeroizing;

const FAST: Argon2Params = Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn pass(p: &str) -> Credential {
    Credential::Passphrase(Zeroizing::new(p.into()))
}

fn keys(p: &str) -> GivenKeys {
    GivenKeys::new(None, Some(Zeroizing::new(p.into())))
}

fn encrypted(dir: &Path, cipher: Cipher) -> LocalStore {
    let opts = InitOptions {
        chunk_size: CS as u32,
    };
    LocalStore::init_encrypted(dir, opts, cipher, pass("pw"), FAST).unwrap()
}

fn write_image(store: &LocalStore, name: &str, data: &[u8]) {
    store.create(name, data.len() as u64).unwrap();
    let img = store.open(name).unwrap();
    img.write_at(0, data).unwrap();
    img.flush().unwrap();
    img.snapshots().unwrap().create("s1").unwrap();
}

fn read(store: &LocalStore, name: &str, snap: Option<&str>) -> Result<Vec<u8>, ImageError> {
    let img = store.open_read_only(name, snap)?;
    let mut buf = vec![0u8; img.size()? as usize];
    img.read_at(0, &mut buf)?;
    Ok(buf)
}

fn store_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn packs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = store_files(&dir.join("packs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    v.sort();
    v
}

#[test]
fn versions_round_trip_and_reopen_with_the_key_only() {
    for cipher in [Cipher::Aes256Gcm, Cipher::XChaCha20Poly1305] {
        let dir = tempfile::tempdir().unwrap();
        let store = encrypted(dir.path(), cipher);
        let mut data = random(8 * CS as usize, 1);
        data[CS as usize..2 * CS as usize].fill(0); // compressible
        write_image(&store, "img", &data);
        let img = store.open("img").unwrap();
        img.write_at(3 * CS, &random(CS as usize, 2)).unwrap();
        img.flush().unwrap();
        img.snapshots().unwrap().create("s2").unwrap();
        drop(img);
        let mut v2 = data.clone();
        v2[3 * CS as usize..4 * CS as usize].copy_from_slice(&random(CS as usize, 2));
        store.put_object("meta", b"{\"a\":1}").unwrap();
        drop(store);

        let store = LocalStore::open_with(dir.path(), &keys("pw")).unwrap();
        assert_eq!(store.encryption(), Some(cipher));
        assert_eq!(read(&store, "img", Some("s1")).unwrap(), data);
        assert_eq!(read(&store, "img", Some("s2")).unwrap(), v2);
        assert_eq!(store.get_object("meta").unwrap().unwrap(), b"{\"a\":1}");
        let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert!(LocalStore::check_stored(dir.path()).unwrap().is_ok());
        // gc copies sealed blobs as they are: still readable after.
        let img = store.open("img").unwrap();
        img.snapshots().unwrap().remove("s1").unwrap();
        drop(img);
        store.gc(&NoProgress).unwrap();
        assert_eq!(read(&store, "img", Some("s2")).unwrap(), v2);

        let err = LocalStore::open(dir.path()).err().unwrap();
        assert!(
            matches!(err, StoreError::Key(CryptoError::NoKey { .. })),
            "{err}"
        );
        let err = LocalStore::open_with(dir.path(), &keys("nope"))
            .err()
            .unwrap();
        assert!(
            matches!(err, StoreError::Key(CryptoError::WrongKey { .. })),
            "{err}"
        );
        assert!(!err.to_string().contains("nope"), "{err}");
    }
}

#[test]
fn no_plaintext_reaches_any_store_file() {
    let marker = b"MARKER-7f3c-not-encrypted!";
    let dir = tempfile::tempdir().unwrap();
    let store = encrypted(dir.path(), Cipher::Aes256Gcm);
    let data: Vec<u8> = marker
        .iter()
        .copied()
        .cycle()
        .take(16 * CS as usize)
        .collect();
    write_image(&store, "img", &data);
    let text = String::from_utf8_lossy(marker).to_string();
    store.put_object("obj", marker).unwrap();
    let img = store.open("img").unwrap();
    img.metadata().unwrap().set("k", &text).unwrap();
    drop(img);
    let hex = hex::encode(marker);
    for path in store_files(dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "{}",
            path.display()
        );
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&hex),
            "{}",
            path.display()
        );
    }
    // The same in an unencrypted store shows (the scan can fail).
    let plain = tempfile::tempdir().unwrap();
    let store = super::tests::small_store(plain.path());
    write_image(&store, "img", &data);
    store.put_object("obj", marker).unwrap();
    let leaks = store_files(plain.path()).iter().any(|p| {
        let bytes = std::fs::read(p).unwrap();
        bytes.windows(marker.len()).any(|w| w == marker)
    });
    assert!(leaks);
}

#[test]
fn flipped_bytes_and_truncation_are_found_by_both_checks_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = encrypted(dir.path(), Cipher::XChaCha20Poly1305);
    let data = random(4 * CS as usize, 3);
    write_image(&store, "img", &data);
    store.put_object("obj", b"record").unwrap();
    drop(store);
    let pack = packs(dir.path()).remove(0);
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[8 + 100] ^= 1; // inside the first sealed blob
    std::fs::write(&pack, &bytes).unwrap();

    let check = LocalStore::check_stored(dir.path()).unwrap();
    assert_eq!(check.damaged.len(), 1, "{check:?}");
    let store = LocalStore::open_with(dir.path(), &keys("pw")).unwrap();
    let err = read(&store, "img", Some("s1")).unwrap_err();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("authentication failed"), "{err}");
    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert_eq!(report.bad.len(), 1, "{report:?}");

    // A truncated object and a truncated HEAD record.
    let obj = dir.path().join("objects/obj");
    let len = std::fs::metadata(&obj).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&obj)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let head = dir.path().join("images/img/head.json");
    let head_bytes = std::fs::read(&head).unwrap();
    let len = head_bytes.len() as u64;
    std::fs::File::options()
        .write(true)
        .open(&head)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    assert_eq!(
        LocalStore::check_stored(dir.path()).unwrap().damaged.len(),
        3
    );
    assert!(store.get_object("obj").is_err());
    assert!(read(&store, "img", None).is_err());

    // A truncated pack: its index is unreadable, its data reported missing.
    std::fs::write(&head, &head_bytes).unwrap();
    let len = bytes.len() as u64;
    std::fs::File::options()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let store = LocalStore::open_with(dir.path(), &keys("pw")).unwrap();
    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert_eq!(report.unreadable_packs.len(), 1, "{report:?}");
    assert!(read(&store, "img", Some("s1")).is_err());
}

#[test]
fn chunks_swapped_between_two_stores_do_not_open() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // Same passphrase, same data: the stores still have their own keys.
    let data = random(2 * CS as usize, 4);
    write_image(&encrypted(a.path(), Cipher::Aes256Gcm), "img", &data);
    write_image(&encrypted(b.path(), Cipher::Aes256Gcm), "img", &data);
    let (pa, pb) = (packs(a.path()).remove(0), packs(b.path()).remove(0));
    let (ba, mut bb) = (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
    assert_eq!(
        ba.len(),
        bb.len(),
        "same layout: the first blob sits at the same place"
    );
    let blob = 8..8 + CS as usize + Cipher::Aes256Gcm.overhead();
    assert_ne!(
        ba[blob.clone()],
        bb[blob.clone()],
        "ids and ciphertexts differ across stores"
    );
    bb[blob.clone()].copy_from_slice(&ba[blob]);
    std::fs::write(&pb, &bb).unwrap();
    assert_eq!(LocalStore::check_stored(b.path()).unwrap().damaged.len(), 1);
    let store = LocalStore::open_with(b.path(), &keys("pw")).unwrap();
    assert!(read(&store, "img", Some("s1")).is_err());
    assert_eq!(
        store
            .verify(&VerifyScope::Store, &NoProgress)
            .unwrap()
            .bad
            .len(),
        1
    );

    // A whole pack of store A moved into store B: its index does not open.
    std::fs::remove_file(&pb).unwrap();
    std::fs::copy(&pa, b.path().join("packs").join(pa.file_name().unwrap())).unwrap();
    let store = LocalStore::open_with(b.path(), &keys("pw")).unwrap();
    assert!(read(&store, "img", Some("s1")).is_err());
    let report = store.verify(&VerifyScope::Store, &NoProgress).unwrap();
    assert_eq!(report.unreadable_packs.len(), 1, "{report:?}");
}

#[test]
fn keys_are_added_removed_and_changed_without_touching_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = random(2 * CS as usize, 5);
    write_image(&encrypted(dir.path(), Cipher::Aes256Gcm), "img", &data);
    let before: Vec<_> = packs(dir.path())
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let key_path = dir.path().with_extension("key");
    crate::crypto::write_new_key_file(&key_path).unwrap();
    let by_file = GivenKeys::new(Some(key_path.clone()), None);
    // Adding needs a working key.
    let cred = Credential::KeyFile {
        path: key_path.clone(),
        secret: crate::crypto::read_key_file(&key_path).unwrap(),
    };
    assert!(LocalStore::key_add(dir.path(), &keys("bad"), &cred, FAST).is_err());
    let file_slot = LocalStore::key_add(dir.path(), &keys("pw"), &cred, FAST).unwrap();
    assert_eq!(
        read(
            &LocalStore::open_with(dir.path(), &by_file).unwrap(),
            "img",
            None
        )
        .unwrap(),
        data
    );
    assert_eq!(LocalStore::key_list(dir.path()).unwrap().len(), 2);

    LocalStore::change_passphrase(dir.path(), &keys("pw"), Zeroizing::new("pw2".into()), FAST)
        .unwrap();
    assert!(
        LocalStore::open_with(dir.path(), &keys("pw")).is_err(),
        "old passphrase stopped working"
    );
    assert!(LocalStore::open_with(dir.path(), &keys("pw2")).is_ok());
    LocalStore::key_remove(dir.path(), &keys("pw2"), &file_slot).unwrap();
    assert!(LocalStore::open_with(dir.path(), &by_file).is_err());
    let only = LocalStore::key_list(dir.path()).unwrap()[0].id.clone();
    assert!(
        LocalStore::key_remove(dir.path(), &keys("pw2"), &only).is_err(),
        "never the last"
    );

    let after: Vec<_> = packs(dir.path())
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after);
    // Missing key file: a one-line error naming it.
    let gone = GivenKeys::new(Some(dir.path().join("missing.key")), None);
    let err = LocalStore::open_with(dir.path(), &gone)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.key") && !err.contains('\n'), "{err}");
    // A key for an unencrypted store is refused (its encryption may have been stripped).
    let plain = tempfile::tempdir().unwrap();
    super::tests::small_store(plain.path());
    assert!(LocalStore::open_with(plain.path(), &keys("pw")).is_err());
}
