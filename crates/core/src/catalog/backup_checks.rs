//! Conformance checks of backup records: every field round-trips, updates
//! replace, unknown ids are not found, lists are oldest first, prefixes
//! resolve.

use super::{
    resolve_backup, BackupKind, BackupPage, BackupRecord, BackupStatus, Catalog, CatalogError,
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A record with every optional field set (and awkward text in it).
fn full(volume: Uuid, created_at: f64) -> BackupRecord {
    BackupRecord {
        id: Uuid::new_v4(),
        volume_id: volume,
        source: "rbd:volumes/vm \"1\"".into(),
        size: (1 << 40) + 3,
        parent: Some(Uuid::new_v4()),
        kind: BackupKind::Incremental,
        status: BackupStatus::Creating,
        store: "rbd:backups".into(),
        image: "volume-x.backup.y".into(),
        snapshot: "backup.y.snap.1".into(),
        bytes_read: 1,
        bytes_written: 2,
        bytes_stored: 3,
        checksum: Some("blake3-32k:abc".into()),
        created_at,
        updated_at: created_at + 0.5,
        completed_at: Some(created_at + 1.25),
        error: Some("it failed; 'quoted'".into()),
        pid: Some(u32::MAX),
        created_base: true,
        metadata: BTreeMap::from([
            ("display_name".to_string(), "disk \"one\"".to_string()),
            ("ünïcode".to_string(), "a\nb".to_string()),
        ]),
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

pub(super) fn backup_round_trip_and_update(cat: &dyn Catalog) {
    let v = Uuid::new_v4();
    let mut a = full(v, 1.0);
    let b = minimal(full(v, 2.0));
    cat.insert_backup(&a).unwrap();
    cat.insert_backup(&b).unwrap();
    assert_eq!(cat.backup(a.id).unwrap(), a);
    assert_eq!(cat.backup(b.id).unwrap(), b);
    a = BackupRecord {
        id: a.id,
        status: BackupStatus::Available,
        ..minimal(full(Uuid::new_v4(), 9.0))
    };
    cat.update_backup(&a).unwrap();
    assert_eq!(cat.backup(a.id).unwrap(), a);
    assert!(cat.insert_backup(&a).is_err(), "a duplicate id is refused");
}

pub(super) fn unknown_backup_is_not_found(cat: &dyn Catalog) {
    let ghost = full(Uuid::new_v4(), 1.0);
    let not_found = |r: Result<_, CatalogError>| matches!(r, Err(CatalogError::BackupNotFound(_)));
    assert!(not_found(cat.backup(ghost.id).map(drop)));
    assert!(not_found(cat.update_backup(&ghost)));
    assert!(not_found(cat.remove_backup(ghost.id)));
    let kept = full(Uuid::new_v4(), 1.0);
    let gone = full(kept.volume_id, 2.0);
    cat.insert_backup(&kept).unwrap();
    cat.insert_backup(&gone).unwrap();
    cat.remove_backup(gone.id).unwrap();
    assert!(not_found(cat.backup(gone.id).map(drop)));
    assert_eq!(cat.list_backups(None).unwrap(), vec![kept]);
}

/// Oldest first (insertion order breaks ties), filtered by volume.
pub(super) fn backups_listed_oldest_first(cat: &dyn Catalog) {
    let (v, w) = (Uuid::new_v4(), Uuid::new_v4());
    let late = full(v, 30.0);
    let tie_first = full(w, 10.0);
    let tie_second = full(v, 10.0);
    for b in [&late, &tie_first, &tie_second] {
        cat.insert_backup(b).unwrap();
    }
    let ids = |list: Vec<BackupRecord>| list.into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(
        ids(cat.list_backups(None).unwrap()),
        vec![tie_first.id, tie_second.id, late.id]
    );
    assert_eq!(
        ids(cat.list_backups(Some(v)).unwrap()),
        vec![tie_second.id, late.id]
    );
    assert!(cat.list_backups(Some(Uuid::new_v4())).unwrap().is_empty());
}

/// Pages follow the list's order, filter by volume and status, continue
/// after a marker, and refuse a marker the filter does not select.
pub(super) fn backups_paged_after_a_marker(cat: &dyn Catalog) {
    let (v, w) = (Uuid::new_v4(), Uuid::new_v4());
    let mut made = Vec::new();
    for (i, volume) in [v, w, v, v, w, v].into_iter().enumerate() {
        let mut b = full(volume, 10.0 + (i / 2) as f64);
        b.status = if i == 3 {
            BackupStatus::Error
        } else {
            BackupStatus::Available
        };
        cat.insert_backup(&b).unwrap();
        made.push(b);
    }
    let ids = |list: Vec<BackupRecord>| list.into_iter().map(|b| b.id).collect::<Vec<_>>();
    let all = ids(cat.list_backups(None).unwrap());
    let page = |volume_id, status, after, limit| {
        cat.backups_page(&BackupPage {
            volume_id,
            status,
            after,
            limit,
        })
    };
    assert_eq!(ids(page(None, None, None, 100).unwrap()), all);
    assert_eq!(ids(page(None, None, None, 2).unwrap()), all[..2]);
    // Continues across the tie at 10.0 in insertion order.
    assert_eq!(ids(page(None, None, Some(all[0]), 3).unwrap()), all[1..4]);
    assert!(page(None, None, Some(all[5]), 3).unwrap().is_empty());
    let of_v: Vec<Uuid> = made
        .iter()
        .filter(|b| b.volume_id == v)
        .map(|b| b.id)
        .collect();
    assert_eq!(
        ids(page(Some(v), None, Some(of_v[0]), 2).unwrap()),
        of_v[1..3]
    );
    let available_v: Vec<Uuid> = of_v
        .iter()
        .copied()
        .filter(|id| *id != made[3].id)
        .collect();
    let ok = Some(BackupStatus::Available);
    assert_eq!(ids(page(Some(v), ok, None, 10).unwrap()), available_v);
    assert_eq!(
        ids(page(None, Some(BackupStatus::Error), None, 10).unwrap()),
        [made[3].id]
    );
    for bad in [Uuid::new_v4(), made[1].id] {
        match page(Some(v), None, Some(bad), 2) {
            Err(CatalogError::BackupNotFound(id)) => assert_eq!(id, bad.to_string()),
            other => panic!("marker {bad} outside the filter: {other:?}"),
        }
    }
    assert!(matches!(
        page(None, ok, Some(made[3].id), 2),
        Err(CatalogError::BackupNotFound(_))
    ));
}

/// The change mark, where the backend has one, stays while nothing
/// changes and moves with every committed change.
pub(super) fn change_mark_moves_with_changes(cat: &dyn Catalog) {
    let Some(before) = cat.change_mark().unwrap() else {
        return;
    };
    let v = Uuid::new_v4();
    let _ = cat.list_backups(None).unwrap();
    assert_eq!(cat.change_mark().unwrap(), Some(before), "a read moved it");
    let mut b = full(v, 1.0);
    cat.insert_backup(&b).unwrap();
    let inserted = cat.change_mark().unwrap();
    assert_ne!(inserted, Some(before), "an insert did not move it");
    b.status = BackupStatus::Available;
    cat.update_backup(&b).unwrap();
    let updated = cat.change_mark().unwrap();
    assert_ne!(updated, inserted, "an update did not move it");
    cat.set_protected(b.id, true).unwrap();
    assert_ne!(
        cat.change_mark().unwrap(),
        updated,
        "protecting did not move it"
    );
}

pub(super) fn prefixes_resolve_when_unique(cat: &dyn Catalog) {
    let a = full(Uuid::new_v4(), 1.0);
    cat.insert_backup(&a).unwrap();
    let text = a.id.to_string();
    assert_eq!(resolve_backup(cat, &text[..8]).unwrap().id, a.id);
    assert_eq!(resolve_backup(cat, &text.to_uppercase()).unwrap().id, a.id);
    assert!(matches!(
        resolve_backup(cat, ""),
        Err(CatalogError::BackupNotFound(_))
    ));
}
