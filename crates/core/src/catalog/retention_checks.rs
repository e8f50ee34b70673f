//! Conformance checks of protected backups and retention policies.

use super::{BackupKind, BackupRecord, BackupStatus, Catalog, CatalogError, PolicyScope};
use crate::retention::Policy;
use std::collections::BTreeSet;
use uuid::Uuid;

fn backup(created_at: f64) -> BackupRecord {
    BackupRecord {
        id: Uuid::new_v4(),
        volume_id: Uuid::new_v4(),
        source: "/dev/vg/lv".into(),
        size: 1 << 20,
        parent: None,
        kind: BackupKind::Full,
        status: BackupStatus::Available,
        store: "/srv/store".into(),
        image: "base".into(),
        snapshot: "snap".into(),
        bytes_read: 0,
        bytes_written: 0,
        bytes_stored: 0,
        checksum: None,
        created_at,
        updated_at: created_at,
        completed_at: Some(created_at),
        error: None,
        pid: None,
        created_base: true,
        metadata: Default::default(),
    }
}

/// Protection is set and lifted by id, survives a stale copy of the record
/// written back, goes with the backup, and needs a known backup.
pub(super) fn protection_outlives_record_rewrites(cat: &dyn Catalog) {
    let b = backup(1.0);
    cat.insert_backup(&b).unwrap();
    cat.set_protected(b.id, true).unwrap();
    cat.set_protected(b.id, true).unwrap();
    cat.update_backup(&b).unwrap();
    assert_eq!(cat.protected_backups().unwrap(), BTreeSet::from([b.id]));
    cat.set_protected(b.id, false).unwrap();
    assert!(cat.protected_backups().unwrap().is_empty());
    cat.set_protected(b.id, true).unwrap();
    cat.remove_backup(b.id).unwrap();
    assert!(cat.protected_backups().unwrap().is_empty());
    assert!(matches!(
        cat.set_protected(Uuid::new_v4(), true),
        Err(CatalogError::BackupNotFound(_))
    ));
}

/// Policies per scope: set, replaced, listed by key, removed.
pub(super) fn policies_round_trip_per_scope(cat: &dyn Catalog) {
    let volume = PolicyScope::Volume(Uuid::new_v4());
    let store = PolicyScope::Store("rbd:backups".into());
    let daily = Policy {
        keep_daily: 7,
        keep_within: Some("2d".into()),
        time_zone: Some("Europe/Berlin".into()),
        ..Policy::default()
    };
    let last = Policy {
        keep_last: 3,
        max_chain_length: Some(10),
        ..Policy::default()
    };
    cat.set_policy(&volume, Some(&daily)).unwrap();
    cat.set_policy(&store, Some(&daily)).unwrap();
    cat.set_policy(&store, Some(&last)).unwrap();
    assert_eq!(cat.policy(&volume).unwrap(), Some(daily.clone()));
    assert_eq!(
        cat.list_policies().unwrap(),
        vec![(store.clone(), last), (volume.clone(), daily)]
    );
    cat.set_policy(&volume, None).unwrap();
    assert_eq!(cat.policy(&volume).unwrap(), None);
    assert_eq!(cat.list_policies().unwrap().len(), 1);
}
