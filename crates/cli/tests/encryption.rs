//! Encrypted local stores through the real binary: `store init
//! --encryption`, the key options on every command, `key` commands,
//! wrong and missing keys, the keyless check, no plaintext at rest, and a
//! kill -9 mid-backup.

mod util;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use util::*;

const SIZE: u64 = 24 * MIB;
const EXTENTS: &[(u64, u64)] = &[
    (0, 3 * MIB),
    (5 * MIB + 4096, 2 * MIB),
    (20 * MIB, MIB + 777),
];
const PASSPHRASE: &str = "correct horse battery staple 7f3a";

/// A test dir whose store is encrypted, and the key options to open it.
struct Enc {
    dir: Dir,
    keys: Vec<String>,
}

impl Enc {
    /// A store encrypted with `cipher`, keyed by a passphrase file.
    fn with_passphrase(cipher: &str) -> Enc {
        let dir = Dir::new();
        let file = dir.path("passphrase");
        std::fs::write(&file, format!("{PASSPHRASE}\n")).unwrap();
        let keys = vec!["--passphrase-file".into(), path_str(&file)];
        let enc = Enc { dir, keys };
        enc.ok(&["store", "init", "--encryption", cipher]);
        enc
    }

    /// A store keyed by a key file that `store init` writes.
    fn with_key_file() -> Enc {
        let dir = Dir::new();
        let keys = vec!["--key-file".into(), path_str(&dir.path("store.key"))];
        let enc = Enc { dir, keys };
        let out = enc.ok(&["store", "init", "--encryption", "aes256gcm"]);
        assert!(out.contains("wrote a new key file"), "{out}");
        enc
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        all
    }

    fn ok(&self, args: &[&str]) -> String {
        self.dir.ok(&self.args(args))
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        self.dir.json(&self.args(args))
    }

    fn fails(&self, args: &[&str]) -> String {
        self.dir.fails(&self.args(args))
    }

    fn backup(&self, src: &Path) -> serde_json::Value {
        self.json(&["backup", "create", src.to_str().unwrap()])
    }

    fn restore(&self, record: &serde_json::Value, name: &str) -> PathBuf {
        let out = self.dir.path(name);
        self.ok(&["backup", "restore", &id_of(record), out.to_str().unwrap()]);
        out
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Every file of the store (and anything else under `root`), read whole.
fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_by_size(root)
        .into_iter()
        .filter(|(_, p)| {
            let data = std::fs::read(p).unwrap();
            data.windows(needle.len()).any(|w| w == needle)
        })
        .map(|(_, p)| p)
        .collect()
}

/// Everything the store holds, as bytes and file names, for "nothing changed".
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = files_by_size(root)
        .into_iter()
        .map(|(_, p)| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn full_incremental_restore_and_verify_round_trip_with_both_ciphers() {
    for cipher in ["aes256gcm", "xchacha20poly1305"] {
        let enc = Enc::with_passphrase(cipher);
        let src = enc.dir.path("disk.img");
        make_image(&src, SIZE, EXTENTS, 1);
        let first = enc.backup(&src);
        assert_eq!(first["kind"], "full");
        let v1 = sha256(&src);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
        for off in [MIB, 10 * MIB + 8192, 22 * MIB] {
            write_at(&src, off, &random_bytes(&mut rng, MIB / 4));
        }
        let second = enc.backup(&src);
        assert_eq!(second["kind"], "incremental", "{cipher}");
        assert_eq!(sha256(&enc.restore(&first, "r1.img")), v1, "{cipher}");
        assert_eq!(
            sha256(&enc.restore(&second, "r2.img")),
            sha256(&src),
            "{cipher}"
        );
        let verified = enc.ok(&["verify"]);
        assert!(verified.contains("checksum matches"), "{verified}");
        let listed = enc.json(&["backup", "list"]);
        assert_eq!(listed.as_array().unwrap().len(), 2);
        // gc and stats open the store with the key too.
        enc.ok(&["gc"]);
        enc.ok(&["store", "stats"]);
    }
}

#[test]
fn a_key_file_store_round_trips_and_a_removed_key_file_is_a_clear_error() {
    let enc = Enc::with_key_file();
    let key = enc.dir.path("store.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the key file is the owner's only");
    let src = enc.dir.path("disk.img");
    make_image(&src, SIZE, EXTENTS, 2);
    let record = enc.backup(&src);
    assert_eq!(sha256(&enc.restore(&record, "r.img")), sha256(&src));
    let moved = enc.dir.path("elsewhere.key");
    std::fs::rename(&key, &moved).unwrap();
    let before = snapshot(&enc.dir.store());
    let err = enc.fails(&[
        "backup",
        "restore",
        &id_of(&record),
        enc.dir.path("r2.img").to_str().unwrap(),
    ]);
    assert!(
        err.contains("key file") && err.contains("store.key"),
        "{err}"
    );
    let err = enc.fails(&["backup", "create", src.to_str().unwrap()]);
    assert!(err.contains("key file"), "{err}");
    assert!(!enc.dir.path("r2.img").exists(), "nothing restored");
    assert_eq!(snapshot(&enc.dir.store()), before, "the store is unchanged");
    std::fs::rename(&moved, &key).unwrap();
    enc.ok(&["verify", &id_of(&record)]);
}

#[test]
fn wrong_or_no_passphrase_is_a_clear_error_and_changes_nothing() {
    let enc = Enc::with_passphrase("aes256gcm");
    let src = enc.dir.path("disk.img");
    make_image(&src, SIZE, EXTENTS, 3);
    let record = enc.backup(&src);
    let before = snapshot(&enc.dir.store());
    let wrong = enc.dir.path("wrong");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    for args in [
        vec!["backup", "create", src.to_str().unwrap()],
        vec!["verify"],
        vec!["gc"],
        vec![
            "backup",
            "restore",
            &id_of(&record),
            "/nonexistent-dir/x.img",
        ],
    ] {
        let mut with_wrong = vec!["--passphrase-file", wrong.to_str().unwrap()];
        with_wrong.extend_from_slice(&args);
        let err = enc.dir.fails(&with_wrong);
        assert!(
            err.contains("wrong key file or passphrase"),
            "{args:?}: {err}"
        );
        let err = enc.dir.fails(&args);
        assert!(
            err.contains("is encrypted: give a key file or a passphrase"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(snapshot(&enc.dir.store()), before, "the store is unchanged");
    let list = enc.json(&["backup", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "no backup was recorded");
    // The environment variable is a source too.
    let out = enc
        .dir
        .command(&["verify", &id_of(&record)])
        .env("BLOCKBACK_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn key_commands_add_list_remove_and_change_the_passphrase() {
    let enc = Enc::with_passphrase("xchacha20poly1305");
    let src = enc.dir.path("disk.img");
    make_image(&src, SIZE, EXTENTS, 4);
    let record = enc.backup(&src);
    let id = id_of(&record);
    let packs_before = snapshot(&enc.dir.store().join("packs"));
    // A key file slot beside the passphrase.
    let key = enc.dir.path("extra.key");
    enc.ok(&["key", "add", "--new-key-file", key.to_str().unwrap()]);
    let slots = enc.json(&["key", "list"]);
    assert_eq!(slots.as_array().unwrap().len(), 2, "{slots}");
    enc.dir.ok(&[
        "--key-file",
        key.to_str().unwrap(),
        "verify",
        &id_of(&record),
    ]);
    // Change the passphrase: the old one stops working, the new one works.
    let new = enc.dir.path("new-passphrase");
    std::fs::write(&new, "a brand new passphrase\n").unwrap();
    enc.ok(&[
        "key",
        "change-passphrase",
        "--new-passphrase-file",
        new.to_str().unwrap(),
    ]);
    let err = enc.fails(&["verify", &id_of(&record)]);
    assert!(err.contains("wrong key file or passphrase"), "{err}");
    let with_new = ["--passphrase-file", new.to_str().unwrap()];
    let mut args = with_new.to_vec();
    args.extend(["verify", id.as_str()]);
    enc.dir.ok(&args);
    // Remove the key file slot with the new passphrase; it stops working.
    let key_slot = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "key-file")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut args = with_new.to_vec();
    args.extend(["key", "remove", &key_slot]);
    enc.dir.ok(&args);
    let err = enc
        .dir
        .fails(&["--key-file", key.to_str().unwrap(), "verify"]);
    assert!(err.contains("wrong key file or passphrase"), "{err}");
    // The last slot is never removed.
    let passphrase_slot = enc.dir.json(&["key", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut args = with_new.to_vec();
    args.extend(["key", "remove", &passphrase_slot]);
    enc.dir.fails(&args);
    assert_eq!(
        snapshot(&enc.dir.store().join("packs")),
        packs_before,
        "key changes never rewrite data"
    );
}

/// A source whose every 4 KiB block carries the marker among random
/// bytes, so even compression leaves it readable in an unencrypted store.
fn marker_image(path: &Path, marker: &[u8]) {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(77);
    let mut data = random_bytes(&mut rng, 4 * MIB);
    for block in data.chunks_mut(4096) {
        block[100..100 + marker.len()].copy_from_slice(marker);
    }
    std::fs::write(path, data).unwrap();
}

#[test]
fn no_plaintext_marker_or_passphrase_in_any_store_or_catalog_file() {
    let marker = b"BLOCKBACK-PLAINTEXT-MARKER-3b9e1";
    // The control: an unencrypted store shows the marker, so the scan can fail.
    let plain = Dir::new();
    let src = plain.path("disk.img");
    marker_image(&src, marker);
    plain.backup(&src);
    assert!(
        !files_containing(&plain.store(), marker).is_empty(),
        "the control store should hold the marker"
    );
    for cipher in ["aes256gcm", "xchacha20poly1305"] {
        let enc = Enc::with_passphrase(cipher);
        let src = enc.dir.path("disk.img");
        marker_image(&src, marker);
        let first = enc.backup(&src);
        write_at(&src, MIB, &marker.repeat(1000));
        enc.backup(&src);
        let found = files_containing(&enc.dir.store(), marker);
        assert!(found.is_empty(), "{cipher}: marker in {found:?}");
        let catalog = enc.dir.path("catalog.sqlite");
        for secret in [PASSPHRASE.as_bytes(), marker] {
            assert!(files_containing(&enc.dir.store(), PASSPHRASE.as_bytes()).is_empty());
            let bytes = std::fs::read(&catalog).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{cipher}: catalog"
            );
        }
        // Debug logging never shows the passphrase.
        let out = enc
            .dir
            .command(&enc.args(&["verify", &id_of(&first)]))
            .env("BLOCKBACK_LOG", "trace")
            .output()
            .unwrap();
        assert!(out.status.success());
        let all = [out.stdout, out.stderr].concat();
        assert!(!all
            .windows(PASSPHRASE.len())
            .any(|w| w == PASSPHRASE.as_bytes()));
    }
}

/// Flips one byte in the middle of the largest pack.
fn damage_largest_pack(store: &Path) -> PathBuf {
    let (len, pack) = files_by_size(&store.join("packs"))
        .into_iter()
        .next()
        .unwrap();
    let mut data = std::fs::read(&pack).unwrap();
    data[(len / 2) as usize] ^= 0x40;
    std::fs::write(&pack, data).unwrap();
    pack
}

#[test]
fn verify_stored_only_needs_no_key_and_full_verify_authenticates() {
    let enc = Enc::with_passphrase("aes256gcm");
    let src = enc.dir.path("disk.img");
    make_image(&src, SIZE, EXTENTS, 6);
    let record = enc.backup(&src);
    let keyless = enc.dir.ok(&["verify", "--stored-only"]);
    assert!(keyless.contains("checked without the key"), "{keyless}");
    let json = enc.dir.json(&["verify", "--stored-only"]);
    assert!(json["packs"].as_u64().unwrap() >= 1, "{json}");
    let pack = damage_largest_pack(&enc.dir.store());
    let err = enc.dir.fails(&["verify", "--stored-only"]);
    assert!(err.contains("damaged file"), "{err}");
    let out = enc.dir.run(&["verify", "--stored-only"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(pack.file_name().unwrap().to_str().unwrap()),
        "{stdout}"
    );
    let err = enc.fails(&["verify"]);
    assert!(err.contains("problem"), "{err}");
    let restored = enc.dir.path("r.img");
    let out = enc.dir.run(&enc.args(&[
        "backup",
        "restore",
        &id_of(&record),
        restored.to_str().unwrap(),
    ]));
    assert!(
        !out.status.success(),
        "a damaged backup never restores silently"
    );
    // On an unencrypted store --stored-only says what to run instead.
    let plain = Dir::new();
    plain.backup(&src);
    let err = plain.fails(&["verify", "--stored-only"]);
    assert!(err.contains("not encrypted"), "{err}");
}

#[test]
fn key_options_are_refused_where_they_cannot_apply() {
    let plain = Dir::new();
    let src = plain.path("disk.img");
    make_image(&src, SIZE, EXTENTS, 7);
    plain.backup(&src);
    let pass = plain.path("passphrase");
    std::fs::write(&pass, "whatever\n").unwrap();
    let p = pass.to_str().unwrap();
    let err = plain.fails(&[
        "--passphrase-file",
        p,
        "backup",
        "create",
        src.to_str().unwrap(),
    ]);
    assert!(err.contains("not encrypted, but a key was given"), "{err}");
    let other = plain.path("other-store");
    let o = other.to_str().unwrap();
    let err = plain.fails(&[
        "--store",
        o,
        "--passphrase-file",
        p,
        "backup",
        "create",
        src.to_str().unwrap(),
    ]);
    assert!(err.contains("store init --encryption"), "{err}");
    assert!(!other.exists(), "no unencrypted store was created");
    let err = plain.fails(&["--store", o, "--passphrase-file", p, "store", "init"]);
    assert!(err.contains("--encryption none"), "{err}");
    let err = plain.fails(&["--store", o, "store", "init", "--encryption", "aes256gcm"]);
    assert!(err.contains("give --key-file"), "{err}");
    assert!(!other.exists());
    let missing = plain.path("no-such-passphrase");
    let err = plain.fails(&[
        "--passphrase-file",
        missing.to_str().unwrap(),
        "backup",
        "list",
    ]);
    assert!(
        err.contains("passphrase file") && err.contains("no-such-passphrase"),
        "{err}"
    );
    let err = plain.fails(&["key", "list"]);
    assert!(err.contains("not encrypted"), "{err}");
    // RBD stores: refused before any cluster is contacted.
    let err = plain.fails(&["--store", "rbd:backups", "--passphrase-file", p, "gc"]);
    assert!(err.contains("RBD stores are not encrypted"), "{err}");
    let rbd_init = [
        "--store",
        "rbd:backups",
        "store",
        "init",
        "--encryption",
        "aes256gcm",
    ];
    let err = plain.fails(&rbd_init);
    assert!(err.contains("RBD stores are not encrypted"), "{err}");
    let bad = plain.run(&["--store", o, "store", "init", "--encryption", "rot13"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
}

/// A backup into an encrypted store killed after `delay`: the first
/// backup still restores and the store verifies. Whether it landed mid-backup.
fn kill_encrypted_backup_after(delay: Duration, seed: u64) -> bool {
    let enc = Enc::with_passphrase("aes256gcm");
    let src = enc.dir.path("disk.img");
    let size = 64 * MIB;
    make_image(&src, size, &[(0, 30 * MIB), (32 * MIB, 30 * MIB)], seed);
    let first = enc.backup(&src);
    let v1 = sha256(&src);
    make_image(&src, size, &[(0, 30 * MIB), (32 * MIB, 30 * MIB)], seed + 1);
    let mut child = enc
        .dir
        .command(&enc.args(&["--quiet", "backup", "create", src.to_str().unwrap()]))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let creating = (0..500).any(|_| {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let list = enc.json(&["backup", "list"]);
        let found = list
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["status"] == "creating");
        if !found {
            std::thread::sleep(Duration::from_millis(5));
        }
        found
    });
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
    let list = enc.json(&["backup", "list"]);
    let mut interrupted = false;
    for b in list.as_array().unwrap() {
        assert!(
            b["status"] == "available" || b["status"] == "error",
            "left {b}"
        );
        interrupted |= b["status"] == "error";
    }
    assert_eq!(sha256(&enc.restore(&first, "r.img")), v1);
    enc.dir.ok(&["verify", "--stored-only"]);
    let third = enc.backup(&src);
    assert_eq!(sha256(&enc.restore(&third, "r3.img")), sha256(&src));
    enc.ok(&["verify"]);
    creating && interrupted
}

#[test]
fn kill_during_a_backup_into_an_encrypted_store_loses_nothing_completed() {
    let mut interrupted = 0;
    for (i, ms) in [0u64, 30, 120].into_iter().enumerate() {
        interrupted += kill_encrypted_backup_after(Duration::from_millis(ms), 40 + i as u64) as u32;
    }
    eprintln!("{interrupted} of 3 kills landed mid-backup");
    assert!(
        interrupted > 0,
        "no kill landed during a backup: the test proves nothing"
    );
}

#[test]
fn the_service_opens_an_encrypted_store_with_its_configured_key_file() {
    use util::service::Service;
    let keys = Dir::new();
    let store = keys.path("store");
    let key = keys.path("store.key");
    let k = key.to_str().unwrap();
    let s = store.to_str().unwrap();
    keys.ok(&[
        "--store",
        s,
        "--key-file",
        k,
        "store",
        "init",
        "--encryption",
        "aes256gcm",
    ]);
    let service = Service::start(&format!("key_file = \"{k}\""), Some(s));
    let src = service.dir.path("disk.img");
    make_image(&src, SIZE, EXTENTS, 9);
    let volume = service.register("vm1", src.to_str().unwrap());
    service.backup(&volume, "auto");
    let run = |args: &[&str]| service.cli(s, args).output().unwrap();
    let list = run(&["--key-file", k, "--json", "backup", "list"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = id_of(&list[0]);
    let out = service.dir.path("r.img");
    let restored = run(&[
        "--key-file",
        k,
        "backup",
        "restore",
        &id,
        out.to_str().unwrap(),
    ]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(sha256(&out), sha256(&src));
    let keyless = run(&["verify", &id]);
    assert!(!keyless.status.success(), "the store needs the key");
    assert!(!service
        .log()
        .contains(&std::fs::read_to_string(&key).unwrap().trim().to_string()));
    // A key for an RBD store stops the service at start, with the reason.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_blockback"))
        .args(["serve", "--config", service.config.to_str().unwrap()])
        .env("BLOCKBACK_STORE", "rbd:backups")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("does not encrypt"), "{stderr}");
}

/// Copies a directory tree (the fixture store) into a test dir.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The fixture under tests/data was written by the build before AES-GCM
/// moved from RustCrypto's aes-gcm to ring (main 38fde5b): `store init
/// --encryption aes256gcm` with a key file, then a full and an incremental
/// backup of `make_image(FIXTURE_SIZE, FIXTURE_EXTENTS, 11)` and of the
/// same image with `FIXTURE_CHANGE` written. Operators' existing stores must
/// keep opening, verifying and restoring after such a change.
const FIXTURE: &str = "tests/data/aes256gcm-store-2026-12-06";
const FIXTURE_SIZE: u64 = 2 * MIB;
const FIXTURE_EXTENTS: &[(u64, u64)] = &[(0, 256 * 1024), (MIB, 64 * 1024 + 5)];
const FIXTURE_CHANGE: (u64, &[u8]) = (1536 * 1024, b"changed after the full backup");

/// The fixture's catalog names the store where it was made; the records
/// must name this test dir's copy.
fn point_catalog_at(dir: &Dir) {
    let catalog = rusqlite::Connection::open(dir.path("catalog.sqlite")).unwrap();
    let store = path_str(&dir.store());
    let changed = catalog
        .execute("UPDATE backups SET store = ?1", [&store])
        .unwrap();
    assert_eq!(changed, 2);
}

#[test]
fn a_store_sealed_by_the_rustcrypto_build_restores() {
    let dir = Dir::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    copy_tree(&fixture, dir.tmp.path());
    point_catalog_at(&dir);
    let keys = vec!["--key-file".into(), path_str(&dir.path("store.key"))];
    let enc = Enc { dir, keys };

    let full = enc.dir.path("full.img");
    make_image(&full, FIXTURE_SIZE, FIXTURE_EXTENTS, 11);
    let incremental = enc.dir.path("incremental.img");
    std::fs::copy(&full, &incremental).unwrap();
    write_at(&incremental, FIXTURE_CHANGE.0, FIXTURE_CHANGE.1);

    let list = enc.json(&["backup", "list"]);
    let records = list.as_array().expect("backup list is an array");
    assert_eq!(records.len(), 2, "{list}");
    enc.ok(&["verify"]);
    for record in records {
        let expected = match record["kind"].as_str() {
            Some("full") => &full,
            _ => &incremental,
        };
        let out = enc.restore(record, &format!("restored-{}", id_of(record)));
        assert_eq!(sha256(&out), sha256(expected), "{record}");
    }
    // A new backup sealed by this build lands beside the old ones, in a
    // pack with the new footer; the keyless check reads both kinds.
    let old_packs = pack_footer_magics(&enc.dir.store());
    assert!(old_packs.iter().all(|m| m == b"BBPKENC1"), "{old_packs:?}");
    let fresh = enc.dir.path("fresh.img");
    make_image(&fresh, FIXTURE_SIZE, FIXTURE_EXTENTS, 12);
    let again = enc.backup(&fresh);
    let out = enc.restore(&again, "restored-again");
    assert_eq!(sha256(&out), sha256(&fresh));
    let magics = pack_footer_magics(&enc.dir.store());
    assert!(magics.iter().any(|m| m == b"BBPKENC2"), "{magics:?}");
    let keyless = enc.dir.ok(&["verify", "--stored-only"]);
    assert!(keyless.contains("checked without the key"), "{keyless}");
    // Damage in a pack with the old BLAKE3 footer is still found.
    let old_pack = files_by_size(&enc.dir.store().join("packs"))
        .into_iter()
        .map(|(_, path)| path)
        .find(|path| footer_magic(path) == *b"BBPKENC1")
        .unwrap();
    let mut data = std::fs::read(&old_pack).unwrap();
    data[100] ^= 0x40;
    std::fs::write(&old_pack, data).unwrap();
    let err = enc.dir.fails(&["verify", "--stored-only"]);
    assert!(err.contains("damaged file"), "{err}");
}

fn footer_magic(pack: &Path) -> [u8; 8] {
    let data = std::fs::read(pack).unwrap();
    data[data.len() - 8..].try_into().unwrap()
}

fn pack_footer_magics(store: &Path) -> Vec<[u8; 8]> {
    files_by_size(&store.join("packs"))
        .into_iter()
        .map(|(_, path)| footer_magic(&path))
        .collect()
}
