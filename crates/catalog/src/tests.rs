use super::*;
use blockback_core::catalog::{resolve_backup, BackupKind, BackupStatus};
use std::collections::BTreeMap;
use tempfile::TempDir;

fn catalog() -> (TempDir, SqliteCatalog) {
    let dir = TempDir::new().unwrap();
    let cat = SqliteCatalog::open(dir.path().join("catalog.db")).unwrap();
    (dir, cat)
}

fn volume(source: &str, created_at: f64) -> VolumeRecord {
    VolumeRecord::new(
        Uuid::new_v4(),
        source.into(),
        format!("vol {source}"),
        created_at,
    )
}

/// A record with every optional field set, so round trips cover them all.
fn backup(volume: Uuid, created_at: f64) -> BackupRecord {
    let metadata = BTreeMap::from([
        ("name".to_string(), "disk \"one\"".to_string()),
        ("ünïcode".to_string(), "a\nb".to_string()),
    ]);
    BackupRecord {
        id: Uuid::new_v4(),
        volume_id: volume,
        source: "/dev/vg/lv".into(),
        size: (1 << 40) + 3,
        parent: Some(Uuid::new_v4()),
        kind: BackupKind::Incremental,
        status: BackupStatus::Creating,
        store: "/srv/store".into(),
        image: "base-1".into(),
        snapshot: "backup.x".into(),
        bytes_read: 1,
        bytes_written: 2,
        bytes_stored: 3,
        checksum: Some("blake3:abc".into()),
        created_at,
        updated_at: created_at + 0.5,
        completed_at: Some(created_at + 1.25),
        error: Some("it failed".into()),
        pid: Some(u32::MAX),
        created_base: true,
        metadata,
    }
}

/// The same record with every optional field empty.
fn minimal(mut b: BackupRecord) -> BackupRecord {
    b.parent = None;
    b.kind = BackupKind::Full;
    b.checksum = None;
    b.completed_at = None;
    b.error = None;
    b.pid = None;
    b.created_base = false;
    b.metadata.clear();
    b
}

#[test]
fn volume_round_trip() {
    let (_dir, cat) = catalog();
    let v = volume("rbd:pool/img", 10.5);
    cat.insert_volume(&v).unwrap();
    assert_eq!(cat.volume(v.id).unwrap(), v);
    assert_eq!(
        cat.volume_by_source("rbd:pool/img").unwrap(),
        Some(v.clone())
    );
    assert_eq!(cat.volume_by_source("rbd:pool/other").unwrap(), None);
    let w = volume("/dev/sdb", 5.0);
    cat.insert_volume(&w).unwrap();
    assert_eq!(cat.list_volumes().unwrap(), vec![w, v]);
}

#[test]
fn unknown_volume_is_not_found() {
    let (_dir, cat) = catalog();
    let id = Uuid::new_v4();
    assert!(matches!(cat.volume(id), Err(CatalogError::VolumeNotFound(s)) if s == id.to_string()));
}

#[test]
fn duplicate_volume_source_is_refused() {
    let (_dir, cat) = catalog();
    cat.insert_volume(&volume("/dev/sdb", 1.0)).unwrap();
    let err = cat.insert_volume(&volume("/dev/sdb", 2.0)).unwrap_err();
    assert!(matches!(err, CatalogError::Database { .. }), "{err:?}");
}

#[test]
fn backup_round_trip_all_fields() {
    let (_dir, cat) = catalog();
    let full = backup(Uuid::new_v4(), 100.0);
    let bare = minimal(backup(full.volume_id, 101.0));
    cat.insert_backup(&full).unwrap();
    cat.insert_backup(&bare).unwrap();
    assert_eq!(cat.backup(full.id).unwrap(), full);
    assert_eq!(cat.backup(bare.id).unwrap(), bare);
}

#[test]
fn update_replaces_every_field() {
    let (_dir, cat) = catalog();
    let mut b = backup(Uuid::new_v4(), 100.0);
    cat.insert_backup(&b).unwrap();
    b = minimal(b);
    b.status = BackupStatus::Available;
    b.volume_id = Uuid::new_v4();
    b.bytes_stored = 99;
    cat.update_backup(&b).unwrap();
    assert_eq!(cat.backup(b.id).unwrap(), b);
}

#[test]
fn unknown_backup_is_not_found() {
    let (_dir, cat) = catalog();
    let b = backup(Uuid::new_v4(), 1.0);
    let not_found = |r: CatalogResult<()>| matches!(r, Err(CatalogError::BackupNotFound(s)) if s == b.id.to_string());
    assert!(not_found(cat.backup(b.id).map(drop)));
    assert!(not_found(cat.update_backup(&b)));
    assert!(not_found(cat.remove_backup(b.id)));
}

#[test]
fn remove_deletes_only_that_backup() {
    let (_dir, cat) = catalog();
    let a = backup(Uuid::new_v4(), 1.0);
    let b = backup(a.volume_id, 2.0);
    cat.insert_backup(&a).unwrap();
    cat.insert_backup(&b).unwrap();
    cat.remove_backup(a.id).unwrap();
    assert!(matches!(
        cat.backup(a.id),
        Err(CatalogError::BackupNotFound(_))
    ));
    assert_eq!(cat.list_backups(None).unwrap(), vec![b]);
}

#[test]
fn duplicate_backup_id_is_refused() {
    let (_dir, cat) = catalog();
    let a = backup(Uuid::new_v4(), 1.0);
    cat.insert_backup(&a).unwrap();
    assert!(matches!(
        cat.insert_backup(&a),
        Err(CatalogError::Database { .. })
    ));
}

#[test]
fn list_is_oldest_first_and_filters_by_volume() {
    let (_dir, cat) = catalog();
    let (v1, v2) = (Uuid::new_v4(), Uuid::new_v4());
    let late = backup(v1, 30.0);
    let early = backup(v2, 10.0);
    let middle = backup(v1, 20.0);
    for b in [&late, &early, &middle] {
        cat.insert_backup(b).unwrap();
    }
    let all = vec![early.clone(), middle.clone(), late.clone()];
    assert_eq!(cat.list_backups(None).unwrap(), all);
    assert_eq!(cat.list_backups(Some(v1)).unwrap(), vec![middle, late]);
    assert_eq!(cat.list_backups(Some(v2)).unwrap(), vec![early]);
    assert_eq!(cat.list_backups(Some(Uuid::new_v4())).unwrap(), vec![]);
}

#[test]
fn resolves_unique_prefix() {
    let (_dir, cat) = catalog();
    let b = backup(Uuid::new_v4(), 1.0);
    cat.insert_backup(&b).unwrap();
    let prefix = &b.id.to_string()[..8];
    assert_eq!(resolve_backup(&cat, prefix).unwrap(), b);
}

#[test]
fn reopen_keeps_records_and_creates_parent() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("a/b/catalog.db");
    let b = backup(Uuid::new_v4(), 1.0);
    SqliteCatalog::open(&path)
        .unwrap()
        .insert_backup(&b)
        .unwrap();
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_eq!(cat.backup(b.id).unwrap(), b);
}

#[test]
fn uses_wal_and_current_schema() {
    let (_dir, cat) = catalog();
    let conn = Connection::open(cat.path()).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn a_current_catalog_opens_while_another_connection_writes() {
    let (_dir, cat) = catalog();
    let writer = Connection::open(cat.path()).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = std::time::Instant::now();
    let again = SqliteCatalog::open(cat.path()).unwrap();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "waited {:?} for the other connection's write lock",
        start.elapsed()
    );
    assert!(again.list_volumes().unwrap().is_empty());
    writer.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn newer_schema_is_refused() {
    let (_dir, cat) = catalog();
    let path = cat.path().to_path_buf();
    drop(cat);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    match SqliteCatalog::open(&path) {
        Err(CatalogError::NewerSchema { found, known, .. }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn corrupt_row_is_an_error_not_a_panic() {
    let (_dir, cat) = catalog();
    let b = backup(Uuid::new_v4(), 1.0);
    cat.insert_backup(&b).unwrap();
    let conn = Connection::open(cat.path()).unwrap();
    conn.execute("UPDATE backups SET status = 'weird'", [])
        .unwrap();
    match cat.backup(b.id) {
        Err(CatalogError::Database { msg, .. }) => assert!(msg.contains("status"), "{msg}"),
        other => panic!("expected a Database error, got {other:?}"),
    }
}

#[test]
fn two_connections_see_each_others_writes() {
    let (_dir, a) = catalog();
    let b = SqliteCatalog::open(a.path()).unwrap();
    let mut rec = backup(Uuid::new_v4(), 1.0);
    a.insert_backup(&rec).unwrap();
    assert_eq!(b.backup(rec.id).unwrap(), rec);
    rec.status = BackupStatus::Available;
    b.update_backup(&rec).unwrap();
    assert_eq!(a.backup(rec.id).unwrap(), rec);
    b.remove_backup(rec.id).unwrap();
    assert!(a.list_backups(None).unwrap().is_empty());
}

/// Processes that create, migrate and write the same new catalog at once
/// wait for each other (busy timeout) instead of failing with SQLITE_BUSY.
#[test]
fn concurrent_writers_all_succeed() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("new.db");
    let volume = Uuid::new_v4();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let cat = SqliteCatalog::open(&path).unwrap();
                for i in 0..25 {
                    let mut b = backup(volume, f64::from(t * 100 + i));
                    cat.insert_backup(&b).unwrap();
                    b.status = BackupStatus::Available;
                    cat.update_backup(&b).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let cat = SqliteCatalog::open(&path).unwrap();
    let all = cat.list_backups(Some(volume)).unwrap();
    assert_eq!(all.len(), 100);
    assert!(all.iter().all(|b| b.status == BackupStatus::Available));
}

#[test]
fn ambiguous_prefix_names_the_candidates() {
    let (_dir, cat) = catalog();
    let mut a = backup(Uuid::new_v4(), 1.0);
    let mut b = backup(Uuid::new_v4(), 2.0);
    a.id = Uuid::parse_str("abcd0000-0000-4000-8000-000000000001").unwrap();
    b.id = Uuid::parse_str("abcd0000-0000-4000-8000-000000000002").unwrap();
    cat.insert_backup(&a).unwrap();
    cat.insert_backup(&b).unwrap();
    let err = resolve_backup(&cat, "abcd").unwrap_err().to_string();
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains(&a.id.to_string()) && err.contains(&b.id.to_string()));
    assert!(matches!(
        resolve_backup(&cat, "ffff"),
        Err(CatalogError::BackupNotFound(_))
    ));
}

#[test]
fn passes_the_catalog_conformance_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    blockback_core::catalog::conformance::run_catalog_suite(&|| {
        let (dir, cat) = catalog();
        dirs.lock().unwrap().push(dir);
        Box::new(cat)
    });
}

/// Two connections (as two processes) claiming from one file never get
/// the same job.
#[test]
fn claims_through_two_connections_are_exclusive() {
    use blockback_core::catalog::{JobClaim, JobKind, JobRecord};
    let (_dir, a) = catalog();
    let b = SqliteCatalog::open(a.path()).unwrap();
    for i in 0..20 {
        let job = JobRecord::queued(
            JobKind::Backup,
            Uuid::new_v4(),
            None,
            "{}".into(),
            f64::from(i),
        );
        a.insert_job(&job).unwrap();
    }
    let claim_all = |cat: &SqliteCatalog, worker: &str| {
        let claim = JobClaim {
            worker: worker.into(),
            lease_secs: 1.0,
            clock: || 1.0,
        };
        std::iter::from_fn(|| cat.claim_job(&claim).unwrap())
            .map(|j| j.id)
            .collect::<Vec<_>>()
    };
    let (mut got_a, got_b) = std::thread::scope(|s| {
        let ta = s.spawn(|| claim_all(&a, "a"));
        let tb = s.spawn(|| claim_all(&b, "b"));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    got_a.extend(got_b);
    got_a.sort();
    got_a.dedup();
    assert_eq!(got_a.len(), 20);
}

#[test]
fn a_read_only_open_reads_and_refuses_writes_naming_why() {
    let (dir, cat) = catalog();
    let v = volume("/dev/a", 1.0);
    cat.insert_volume(&v).unwrap();
    cat.insert_backup(&backup(v.id, 2.0)).unwrap();
    let path = cat.path().to_path_buf();
    drop(cat);
    let ro = SqliteCatalog::open_read_only(&path).unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.list_volumes().unwrap(), vec![v]);
    assert_eq!(ro.list_backups(None).unwrap().len(), 1);
    let err = ro.insert_volume(&volume("/dev/b", 3.0)).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(!SqliteCatalog::open(&path).unwrap().is_read_only());
    let missing = dir.path().join("none.sqlite");
    assert!(SqliteCatalog::open_read_only(&missing).is_err());
    assert!(!missing.exists(), "a read-only open creates nothing");
}

#[test]
fn change_mark_sees_commits_of_another_handle() {
    let (_dir, cat) = catalog();
    let other = SqliteCatalog::open(cat.path()).unwrap();
    let before = cat.change_mark().unwrap().expect("SQLite has a mark");
    assert_eq!(cat.change_mark().unwrap(), Some(before));
    other.insert_backup(&backup(Uuid::new_v4(), 1.0)).unwrap();
    assert_ne!(cat.change_mark().unwrap(), Some(before));
}

#[test]
fn a_schema_4_catalog_opens_read_only() {
    // Schema 5 added only an index: reads of an older catalog on
    // read-only media work without it.
    let (_dir, cat) = catalog();
    let b = backup(Uuid::new_v4(), 1.0);
    cat.insert_backup(&b).unwrap();
    let path = cat.path().to_path_buf();
    drop(cat);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DROP INDEX backups_created_at; PRAGMA user_version = 4")
        .unwrap();
    drop(conn);
    let ro = SqliteCatalog::open_read_only(&path).unwrap();
    assert_eq!(ro.list_backups(None).unwrap(), vec![b]);
}
