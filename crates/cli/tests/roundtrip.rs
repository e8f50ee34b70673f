//! Backups and restores through the real binary: bit-exact, sparse,
//! incremental, verified.

mod util;
use util::*;

const SIZE: u64 = 48 * MIB;
const EXTENTS: &[(u64, u64)] = &[
    (0, 3 * MIB),
    (5 * MIB + 4096, 2 * MIB),
    (20 * MIB, MIB + 12345),
    (47 * MIB, MIB),
];

#[test]
fn full_backup_restores_bit_exact_and_sparse() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, SIZE, EXTENTS, 1);
    let record = dir.backup(&src);
    assert_eq!(record["kind"], "full");
    assert_eq!(record["status"], "available");
    assert_eq!(record["size"], SIZE);
    let out = dir.path("restored.img");
    dir.ok(&["backup", "restore", &id_of(&record), out.to_str().unwrap()]);
    assert_eq!(sha256(&src), sha256(&out));
    // Holes stay holes: allocation within 64 KiB per extent of the source's.
    let slack = 64 * 1024 * EXTENTS.len() as u64;
    assert!(
        allocated(&out) <= allocated(&src) + slack,
        "restored {} vs source {}",
        allocated(&out),
        allocated(&src)
    );
}

#[test]
fn second_backup_is_incremental_and_stores_only_what_changed() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, SIZE, EXTENTS, 2);
    let first = dir.backup(&src);
    let v1 = sha256(&src);
    let before = dir_bytes(&dir.store());
    // 1 MiB of new random data in 4 scattered writes.
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(9);
    for off in [MIB, 10 * MIB + 8192, 30 * MIB, 46 * MIB] {
        write_at(&src, off, &random_bytes(&mut rng, MIB / 4));
    }
    let second = dir.backup(&src);
    assert_eq!(second["kind"], "incremental");
    assert_eq!(second["parent"], first["id"]);
    assert_eq!(second["image"], first["image"], "one base image per chain");
    let growth = dir_bytes(&dir.store()) - before;
    assert!(
        growth <= MIB * 13 / 10 + 256 * 1024,
        "store grew {growth} bytes for 1 MiB changed"
    );
    let r1 = dir.path("r1.img");
    let r2 = dir.path("r2.img");
    dir.ok(&["backup", "restore", &id_of(&first), r1.to_str().unwrap()]);
    dir.ok(&["backup", "restore", &id_of(&second), r2.to_str().unwrap()]);
    assert_eq!(sha256(&r1), v1);
    assert_eq!(sha256(&r2), sha256(&src));
}

#[test]
fn restore_onto_a_larger_existing_file_zeroes_the_excess() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 8 * MIB, &[(0, MIB), (4 * MIB, MIB)], 3);
    let record = dir.backup(&src);
    let target = dir.path("target.img");
    make_image(&target, 12 * MIB, &[(0, 12 * MIB)], 4);
    dir.ok(&[
        "backup",
        "restore",
        &id_of(&record),
        target.to_str().unwrap(),
    ]);
    let restored = std::fs::read(&target).unwrap();
    assert_eq!(restored.len() as u64, 12 * MIB);
    assert_eq!(
        &restored[..8 * MIB as usize],
        &std::fs::read(&src).unwrap()[..]
    );
    assert!(
        restored[8 * MIB as usize..].iter().all(|&b| b == 0),
        "excess beyond the backup must read as zeros"
    );
}

#[test]
fn restore_onto_the_same_data_writes_nothing() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 8 * MIB, &[(0, 2 * MIB)], 5);
    let record = dir.backup(&src);
    let target = dir.path("copy.img");
    std::fs::copy(&src, &target).unwrap();
    let report = dir.json(&[
        "backup",
        "restore",
        &id_of(&record),
        target.to_str().unwrap(),
    ]);
    assert_eq!(report["bytes_written"], 0);
    assert_eq!(sha256(&src), sha256(&target));
}

#[test]
fn verify_passes_on_a_good_store_and_lists_json() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 8 * MIB, &[(MIB, MIB)], 6);
    let record = dir.backup(&src);
    dir.ok(&["verify"]);
    dir.ok(&["verify", &id_of(&record)[..8]]);
    let list = dir.json(&["backup", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let shown = dir.json(&["backup", "show", &id_of(&record)]);
    assert_eq!(shown["checksum"], record["checksum"]);
}

#[test]
fn delete_then_gc_reclaims_space() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 16 * MIB, &[(0, 8 * MIB)], 7);
    let record = dir.backup(&src);
    let full = dir_bytes(&dir.store());
    dir.ok(&["backup", "delete", &id_of(&record)]);
    dir.ok(&["gc"]);
    let after = dir_bytes(&dir.store());
    assert!(after < full / 4, "gc left {after} of {full} bytes");
    assert!(dir.json(&["backup", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn flipped_byte_in_a_stored_chunk_fails_verify_and_restore_naming_it() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 8 * MIB, &[(0, 4 * MIB)], 8);
    let record = dir.backup(&src);
    let (len, pack) = files_by_size(&dir.store()).into_iter().next().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[(len / 3) as usize] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
    let out = dir.run(&["verify"]);
    assert!(!out.status.success(), "verify must fail on a corrupt chunk");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("chunk"), "verify must name the chunk: {text}");
    assert!(
        text.contains(&id_of(&record)),
        "verify must name the backup: {text}"
    );
    let target = dir.path("r.img");
    let err = dir.fails(&[
        "backup",
        "restore",
        &id_of(&record),
        target.to_str().unwrap(),
    ]);
    assert!(err.contains("corrupt") || err.contains("chunk"), "{err}");
}

#[test]
fn force_full_starts_a_new_chain() {
    let dir = Dir::new();
    let src = dir.path("disk.img");
    make_image(&src, 4 * MIB, &[(0, MIB)], 10);
    let first = dir.backup(&src);
    let second = dir.json(&["backup", "create", "--full", src.to_str().unwrap()]);
    assert_eq!(second["kind"], "full");
    assert_ne!(second["image"], first["image"]);
}
