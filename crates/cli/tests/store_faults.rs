//! Faults in the local store and the catalog (issue 18): damaged chunks and
//! packs, read-only media, lost catalogs, a full file system -- through the
//! real binary. The mount tests need root (as CI runs).

mod util;
use blockback_core::catalog::Catalog;
use std::path::{Path, PathBuf};
use std::process::Command;
use util::*;

const SIZE: u64 = 16 * MIB;

fn image(dir: &Dir, name: &str, seed: u64) -> PathBuf {
    let path = dir.path(name);
    make_image(&path, SIZE, &[(0, 6 * MIB), (9 * MIB, 3 * MIB)], seed);
    path
}

fn restore_equals(dir: &Dir, id: &str, source: &Path) {
    let target = dir.path(&format!("restored-{id}.img"));
    let _ = std::fs::remove_file(&target);
    dir.ok(&["backup", "restore", id, target.to_str().unwrap()]);
    assert_eq!(sha256(&target), sha256(source), "restore of {id}");
}

fn packs(store: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(store.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    out.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    out
}

/// Flips a byte a third into the largest pack: inside a data chunk.
fn damage_a_chunk(store: &Path) {
    let (len, pack) = files_by_size(store).into_iter().next().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[(len / 3) as usize] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
}

fn output_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn new_backups_do_not_reuse_a_damaged_chunk_and_heal_the_old_ones() {
    let dir = Dir::new();
    let src = image(&dir, "disk.img", 1);
    let first = id_of(&dir.backup(&src));
    damage_a_chunk(&dir.store());
    // Nobody has read the damaged chunk yet.
    let full = id_of(&dir.json(&["backup", "create", "--full", src.to_str().unwrap()]));
    restore_equals(&dir, &full, &src);
    let other = dir.path("other.img");
    std::fs::copy(&src, &other).unwrap();
    let copy = id_of(&dir.backup(&other));
    restore_equals(&dir, &copy, &other);
    // The damaged chunk was stored again: the first backup is whole too.
    restore_equals(&dir, &first, &src);
    dir.ok(&["verify"]);
}

#[test]
fn an_incremental_after_verify_found_damage_stores_the_chunk_again() {
    let dir = Dir::new();
    let src = image(&dir, "disk.img", 2);
    let first = id_of(&dir.backup(&src));
    damage_a_chunk(&dir.store());
    let out = dir.run(&["verify"]);
    assert!(!out.status.success());
    assert!(output_text(&out).contains(&first), "{}", output_text(&out));
    let second = dir.backup(&src);
    assert_eq!(second["kind"], "incremental");
    restore_equals(&dir, &id_of(&second), &src);
    restore_equals(&dir, &first, &src);
    dir.ok(&["verify"]);
}

#[test]
fn verify_names_every_affected_backup_and_repair_heals_them() {
    let dir = Dir::new();
    let src = image(&dir, "disk.img", 3);
    let first = id_of(&dir.backup(&src));
    write_at(&src, 10 * MIB, &[7u8; 4096]);
    let second = id_of(&dir.backup(&src));
    damage_a_chunk(&dir.store());
    let out = dir.run(&["verify"]);
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(text.contains(&first) && text.contains(&second), "{text}");
    // The source still holds the damaged chunk's data: repair stores it.
    let out = dir.run(&["verify", "--repair"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("repair"),
        "{}",
        output_text(&out)
    );
    restore_equals(&dir, &second, &src);
    dir.ok(&["verify"]);
}

/// Two volumes of random data (nothing shared), each backed up by its own
/// process into its own pack.
fn two_volumes(dir: &Dir) -> (String, PathBuf, String, PathBuf) {
    let (a, b) = (dir.path("a.img"), dir.path("b.img"));
    make_image(&a, SIZE, &[(0, 6 * MIB)], 4);
    make_image(&b, SIZE, &[(MIB, 6 * MIB)], 5);
    let a_id = id_of(&dir.backup(&a));
    let b_id = id_of(&dir.backup(&b));
    (a_id, a, b_id, b)
}

fn only_the_first_volume_fails(dir: &Dir, a_id: &str, b_id: &str, b: &Path) {
    restore_equals(dir, b_id, b);
    let target = dir.path("a-restored.img");
    dir.fails(&["backup", "restore", a_id, target.to_str().unwrap()]);
    let out = dir.run(&["verify"]);
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(text.contains(&format!("backup {b_id} ok")), "{text}");
    assert!(text.contains(&format!("PROBLEM: backup {a_id}")), "{text}");
    assert!(!text.contains(&format!("PROBLEM: backup {b_id}")), "{text}");
    dir.ok(&["verify", b_id]);
    let packs_before = packs(&dir.store()).len();
    dir.ok(&["gc"]);
    assert!(packs(&dir.store()).len() >= packs_before.min(2));
    restore_equals(dir, b_id, b);
}

#[test]
fn a_pack_with_a_damaged_index_only_fails_its_own_backups() {
    let dir = Dir::new();
    let (a_id, _, b_id, b) = two_volumes(&dir);
    let pack = packs(&dir.store())[0].clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    let len = bytes.len();
    bytes[len - 100] ^= 0xff; // the index (the footer is the last 56 bytes)
    std::fs::write(&pack, bytes).unwrap();
    only_the_first_volume_fails(&dir, &a_id, &b_id, &b);
    assert!(pack.exists(), "gc must keep a pack it cannot read");
}

#[test]
fn a_truncated_pack_only_fails_its_own_backups() {
    let dir = Dir::new();
    let (a_id, _, b_id, b) = two_volumes(&dir);
    let pack = packs(&dir.store())[0].clone();
    let len = std::fs::metadata(&pack).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&pack).unwrap();
    file.set_len(len - 30).unwrap(); // half the footer gone
    only_the_first_volume_fails(&dir, &a_id, &b_id, &b);
}

#[test]
fn a_stray_junk_pack_fails_no_backup_and_is_reported() {
    let dir = Dir::new();
    let (a_id, a, b_id, b) = two_volumes(&dir);
    let junk = dir.store().join("packs").join("notes.pack");
    std::fs::write(&junk, b"some file that is not a pack").unwrap();
    restore_equals(&dir, &a_id, &a);
    restore_equals(&dir, &b_id, &b);
    let out = dir.run(&["verify"]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("notes.pack"), "{text}");
    assert!(!text.contains("PROBLEM: backup"), "{text}");
    dir.ok(&["gc"]);
    assert!(junk.exists());
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{cmd:?}: {}", output_text(&out));
}

/// A loop-mounted ext4 file system of `mib` MiB at `mnt`; unmounted on drop.
struct Mount {
    mnt: PathBuf,
}

impl Mount {
    fn ext4(image: &Path, mnt: &Path, mib: u64) -> Mount {
        std::fs::File::create(image)
            .unwrap()
            .set_len(mib * MIB)
            .unwrap();
        run_ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image));
        std::fs::create_dir_all(mnt).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(image)
                .arg(mnt),
        );
        Mount {
            mnt: mnt.to_path_buf(),
        }
    }

    fn remount(&self, opts: &str) {
        run_ok(
            Command::new("mount")
                .args(["-o", &format!("remount,{opts}")])
                .arg(&self.mnt),
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// `blockback` with store and catalog on the mount.
fn on_mount(dir: &Dir, mnt: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_blockback"));
    cmd.arg("--store").arg(mnt.join("store"));
    cmd.arg("--catalog").arg(mnt.join("catalog.sqlite"));
    cmd.args(args)
        .env_remove("BLOCKBACK_STORE")
        .env_remove("BLOCKBACK_CATALOG")
        .current_dir(dir.tmp.path());
    cmd.output().expect("run blockback")
}

fn on_mount_ok(dir: &Dir, mnt: &Path, args: &[&str]) -> String {
    let out = on_mount(dir, mnt, args);
    assert!(out.status.success(), "{args:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn a_store_and_catalog_on_read_only_media_can_be_listed_verified_and_restored() {
    let dir = Dir::new();
    let src = image(&dir, "disk.img", 6);
    let mount = Mount::ext4(&dir.path("fs.img"), &dir.path("mnt"), 96);
    let mnt = mount.mnt.clone();
    on_mount_ok(&dir, &mnt, &["backup", "create", src.to_str().unwrap()]);
    let list = on_mount_ok(&dir, &mnt, &["--json", "backup", "list"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = id_of(&list[0]);
    mount.remount("ro");

    on_mount_ok(&dir, &mnt, &["backup", "list"]);
    on_mount_ok(&dir, &mnt, &["backup", "show", &id]);
    on_mount_ok(&dir, &mnt, &["verify"]);
    on_mount_ok(&dir, &mnt, &["verify", &id]);
    let target = dir.path("restored.img");
    on_mount_ok(
        &dir,
        &mnt,
        &["backup", "restore", &id, target.to_str().unwrap()],
    );
    assert_eq!(sha256(&target), sha256(&src));
    // Writing is refused with the reason.
    let out = on_mount(&dir, &mnt, &["backup", "create", src.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = output_text(&out).to_lowercase();
    assert!(text.contains("read-only"), "{text}");
}

#[test]
fn verify_with_a_lost_catalog_points_to_adopt() {
    let dir = Dir::new();
    let src = image(&dir, "disk.img", 7);
    let id = id_of(&dir.backup(&src));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path(&format!("catalog.sqlite{suffix}")));
    }
    let out = dir.run(&["verify"]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("adopt") && text.contains(&id), "{text}");
    // An empty catalog file is the same.
    std::fs::write(dir.path("catalog.sqlite"), b"").unwrap();
    let out = dir.run(&["verify"]);
    assert!(!out.status.success());
    assert!(output_text(&out).contains("adopt"));
    // adopt records it, and then it verifies and restores.
    dir.ok(&["adopt"]);
    dir.ok(&["verify"]);
    restore_equals(&dir, &id, &src);
}

#[test]
fn verify_catches_a_catalog_size_that_differs_from_the_snapshot() {
    let dir = Dir::new();
    let src = image(&dir, "disk.img", 8);
    let id = id_of(&dir.backup(&src));
    {
        let catalog = blockback_catalog::SqliteCatalog::open(dir.path("catalog.sqlite")).unwrap();
        let mut record = catalog.backup(id.parse().unwrap()).unwrap();
        record.size += MIB;
        catalog.update_backup(&record).unwrap();
    }
    let out = dir.run(&["verify"]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&id) && text.contains("bytes"), "{text}");
    let out = dir.run(&["verify", &id]);
    assert!(!out.status.success());
}

#[test]
fn a_backup_that_fills_the_disk_leaves_no_data_behind() {
    let dir = Dir::new();
    let mount = Mount::ext4(&dir.path("fs.img"), &dir.path("mnt"), 40);
    let mnt = mount.mnt.clone();
    // Random data does not compress: 64 MiB cannot fit in 40 MiB.
    let big = dir.path("big.img");
    make_image(&big, 64 * MIB, &[(0, 64 * MIB)], 9);
    let small = image(&dir, "small.img", 10);
    let out = on_mount(&dir, &mnt, &["backup", "create", big.to_str().unwrap()]);
    assert!(!out.status.success(), "the big backup cannot fit");
    let text = output_text(&out);
    assert!(
        text.contains("No space left") && text.contains("gc"),
        "{text}"
    );
    let left = dir_bytes(&mnt.join("store").join("packs"));
    assert!(left < MIB, "the failed backup left {left} bytes of packs");
    on_mount_ok(&dir, &mnt, &["backup", "create", small.to_str().unwrap()]);
    on_mount_ok(&dir, &mnt, &["verify"]);
}

#[test]
fn a_repair_killed_at_any_point_leaves_a_store_that_repairs_again() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 64 * MIB, &[(0, 40 * MIB)], 11);
    let id = id_of(&dir.backup(&src));
    for (round, delay_ms) in [30u64, 120, 400].into_iter().enumerate() {
        damage_a_chunk(&dir.store());
        let mut child = dir
            .command(&["verify", "--repair"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let out = dir.run(&["verify", "--repair"]);
        assert!(out.status.success(), "round {round}: {}", output_text(&out));
        restore_equals(&dir, &id, &src);
        dir.ok(&["gc"]);
        dir.ok(&["verify"]);
    }
}

#[test]
fn a_backup_killed_on_a_full_disk_is_cleaned_up_by_the_next_command() {
    let dir = Dir::new();
    let mount = Mount::ext4(&dir.path("fs.img"), &dir.path("mnt"), 40);
    let mnt = mount.mnt.clone();
    let big = dir.path("big.img");
    make_image(&big, 64 * MIB, &[(0, 64 * MIB)], 12);
    // Fits an empty file system (about 32 MiB usable), not one that a
    // killed backup's 16+ MiB are left in.
    let small = dir.path("small.img");
    make_image(&small, 24 * MIB, &[(0, 20 * MIB)], 13);
    let mut child = Command::new(env!("CARGO_BIN_EXE_blockback"))
        .arg("--store")
        .arg(mnt.join("store"))
        .arg("--catalog")
        .arg(mnt.join("catalog.sqlite"))
        .args(["backup", "create", big.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once its pack has taken half the file system.
    let packs_dir = mnt.join("store").join("packs");
    for _ in 0..2000 {
        if packs_dir.exists() && dir_bytes(&packs_dir) > 16 * MIB {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait().unwrap();
    assert!(
        dir_bytes(&packs_dir) > 12 * MIB,
        "killed too late or too early"
    );
    // The next command finds the dead backup, removes it and its data.
    on_mount_ok(&dir, &mnt, &["backup", "create", small.to_str().unwrap()]);
    on_mount_ok(&dir, &mnt, &["verify"]);
}

/// A source with snapshots (`local:` image of another store) continues its
/// chain by copying only what changed; a chunk the base still points at
/// that verify found damaged must be written again from the source, not
/// kept in the new backup.
#[test]
fn an_incremental_of_a_snapshotted_source_does_not_keep_a_quarantined_chunk() {
    let dir = Dir::new();
    let src = image(&dir, "disk.img", 6);
    let vols = dir.path("volumes");
    let vols_arg = vols.to_str().unwrap();
    let stream = dir.path("load.diff");
    dir.ok(&[
        "export-diff",
        src.to_str().unwrap(),
        stream.to_str().unwrap(),
    ]);
    dir.ok(&[
        "--volume-store",
        vols_arg,
        "import-diff",
        stream.to_str().unwrap(),
        "local:vol",
    ]);
    let first = id_of(&dir.json(&["--volume-store", vols_arg, "backup", "create", "local:vol"]));
    damage_a_chunk(&dir.store());
    let out = dir.run(&["verify"]);
    assert!(!out.status.success(), "{}", output_text(&out));
    // Nothing changed at the source: the incremental copies nothing, yet
    // the damaged chunk must not be published again.
    let second = dir.json(&["--volume-store", vols_arg, "backup", "create", "local:vol"]);
    assert_eq!(second["kind"], "incremental", "{second}");
    restore_equals(&dir, &id_of(&second), &src);
    restore_equals(&dir, &first, &src);
    dir.ok(&["verify"]);
}
