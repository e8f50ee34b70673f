use super::*;
use crate::store::{InitOptions, LocalStore};
use proptest::prelude::*;
use tempfile::TempDir;

fn store() -> (TempDir, LocalStore) {
    let dir = TempDir::new().unwrap();
    let store = LocalStore::init(dir.path(), InitOptions::default()).unwrap();
    (dir, store)
}

fn map<V: Clone>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn sample() -> BackupMetadata {
    BackupMetadata {
        volume_base: map(&[("id", Value::from("v1")), ("size", Value::from(1))]),
        volume: map(&[("k", "v".to_string())]),
        glance: BTreeMap::new(),
    }
}

/// What Cinder's `BackupMetadataAPI.get` + `jsonutils.dumps` produce (ASCII
/// escapes, Python separators, datetimes as strings, nulls), written by
/// hand from the format.
const CINDER_V2: &str = r#"{"version": 2, "volume-base-metadata": {"id": "3f5b2a34-4c1e-4a1f-9a33-8d0b6c8e2d11", "size": 10, "status": "backing-up", "display_name": "caf\u00e9 db", "display_description": null, "bootable": false, "encrypted": false, "encryption_key_id": null, "created_at": "2024-05-01T10:20:30.000000", "volume_type_id": "b9d6c1b4-0a55-4c1b-8f44-7e1c2d3a4b5c", "availability_zone": "nova", "multiattach": false}, "volume-metadata": {"owner": "team-a", "tier": "gold"}, "volume-glance-metadata": {"image_id": "6e1a0c62-1f7e-4a54-8a0c-3a3d5b1f2e44", "image_name": "ubuntu-24.04", "min_disk": "10", "container_format": "bare", "disk_format": "raw"}}"#;

#[test]
fn object_name_is_cinders() {
    assert_eq!(meta_object_name("0f1e-2d"), "backup.0f1e-2d.meta");
}

#[test]
fn writes_version_2_with_pythons_layout() {
    let json = String::from_utf8(sample().to_json()).unwrap();
    assert_eq!(
        json,
        r#"{"version": 2, "volume-base-metadata": {"id": "v1", "size": 1}, "volume-metadata": {"k": "v"}}"#
    );
    let mut all = sample();
    all.glance.insert("é".into(), "[1, 2]".into());
    let json = String::from_utf8(all.to_json()).unwrap();
    assert!(
        json.ends_with(
            r#""volume-metadata": {"k": "v"}, "volume-glance-metadata": {"é": "[1, 2]"}}"#
        ),
        "{json}"
    );
    let empty = BackupMetadata::default().to_json();
    assert_eq!(empty, br#"{"version": 2}"#);
}

#[test]
fn cinders_json_parses() {
    let meta = BackupMetadata::from_json(CINDER_V2.as_bytes()).unwrap();
    assert_eq!(meta.volume_base["display_name"], Value::from("café db"));
    assert_eq!(meta.volume_base["size"], Value::from(10));
    assert_eq!(meta.volume_base["encryption_key_id"], Value::Null);
    assert_eq!(meta.volume_base.len(), 12);
    assert_eq!(meta.volume["tier"], "gold");
    assert_eq!(meta.glance["min_disk"], "10");
    assert_eq!(meta.glance.len(), 5);
}

#[test]
fn version_1_and_missing_sections_are_read() {
    let v1 = r#"{"version": 1, "volume-metadata": {"a": "b"}}"#;
    let meta = BackupMetadata::from_json(v1.as_bytes()).unwrap();
    assert_eq!(meta.volume, map(&[("a", "b".to_string())]));
    assert!(meta.volume_base.is_empty() && meta.glance.is_empty());
    let bare = BackupMetadata::from_json(br#"{"version": 2.0, "other": 1}"#).unwrap();
    assert_eq!(bare, BackupMetadata::default());
}

fn unsupported(json: &str) -> String {
    match BackupMetadata::from_json(json.as_bytes()) {
        Err(e @ MetadataError::UnsupportedVersion { .. }) => e.to_string(),
        other => panic!("{json}: expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn other_versions_are_refused() {
    assert!(unsupported(r#"{"version": 3}"#).contains("unsupported version 3; upgrade"));
    assert!(unsupported(r#"{"version": 0}"#).contains("version 0"));
    assert!(unsupported(r#"{"version": "2"}"#).contains(r#"version "2""#));
    assert!(unsupported(r#"{"version": null}"#).contains("version null"));
}

fn invalid(json: &[u8]) -> String {
    match BackupMetadata::from_json(json) {
        Err(e @ MetadataError::Invalid { .. }) => e.to_string(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn malformed_content_is_invalid() {
    assert!(invalid(b"{\"version\": 2,").contains("not JSON"));
    assert!(invalid(b"[2]").contains("not a JSON object"));
    assert!(invalid(b"{}").contains("no \"version\""));
    let msg = invalid(br#"{"version": 2, "volume-metadata": {"k": 1}}"#);
    assert!(
        msg.contains("section \"volume-metadata\": invalid type"),
        "{msg}"
    );
    let msg = invalid(br#"{"version": 2, "volume-base-metadata": []}"#);
    assert!(msg.contains("section \"volume-base-metadata\""), "{msg}");
    let msg = invalid(br#"{"version": 1, "volume-glance-metadata": null}"#);
    assert!(msg.contains("section \"volume-glance-metadata\""), "{msg}");
}

#[test]
fn write_once_read_and_remove_through_a_pool() {
    let (_dir, store) = store();
    assert!(read_backup_metadata(&store, "b1").unwrap().is_none());
    write_backup_metadata(&store, "b1", &sample()).unwrap();
    let other = BackupMetadata::default();
    let err = write_backup_metadata(&store, "b1", &other).unwrap_err();
    assert!(matches!(err, MetadataError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("backup.b1.meta"), "{err}");
    assert_eq!(read_backup_metadata(&store, "b1").unwrap(), Some(sample()));
    let raw = store.get_object("backup.b1.meta").unwrap().unwrap();
    assert_eq!(raw, sample().to_json());
    remove_backup_metadata(&store, "b1").unwrap();
    remove_backup_metadata(&store, "b1").unwrap();
    assert!(read_backup_metadata(&store, "b1").unwrap().is_none());
}

#[test]
fn errors_on_read_name_the_object() {
    let (_dir, store) = store();
    store
        .put_object("backup.b3.meta", br#"{"version": 3}"#)
        .unwrap();
    let err = read_backup_metadata(&store, "b3").unwrap_err();
    assert_eq!(
        err.to_string(),
        "backup metadata backup.b3.meta has unsupported version 3; upgrade blockback"
    );
    store.put_object("backup.bad.meta", b"not json").unwrap();
    let err = read_backup_metadata(&store, "bad").unwrap_err();
    assert!(err.to_string().contains("backup.bad.meta"), "{err}");
    assert!(err.to_string().contains("not JSON"), "{err}");
}

#[test]
fn a_bad_backup_id_is_a_pool_error_naming_the_object() {
    let (_dir, store) = store();
    let err = write_backup_metadata(&store, "a/b", &sample()).unwrap_err();
    assert!(
        matches!(err, MetadataError::Pool(ImageError::Invalid { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("backup.a/b.meta"), "{err}");
}

/// JSON values without floats (whose text form need not round trip
/// bit-exactly through serde_json's default parser).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn metadata() -> impl Strategy<Value = BackupMetadata> {
    let strings = || prop::collection::btree_map(any::<String>(), any::<String>(), 0..6);
    (
        prop::collection::btree_map(any::<String>(), json_value(), 0..6),
        strings(),
        strings(),
    )
        .prop_map(|(volume_base, volume, glance)| BackupMetadata {
            volume_base,
            volume,
            glance,
        })
}

proptest! {
    #[test]
    fn random_metadata_round_trips(meta in metadata()) {
        let json = meta.to_json();
        prop_assert_eq!(BackupMetadata::from_json(&json).unwrap(), meta.clone());
        // Any JSON parser reads the same thing (the Python-style
        // separators are only whitespace).
        let generic: Value = serde_json::from_slice(&json).unwrap();
        let compact = serde_json::to_vec(&generic).unwrap();
        prop_assert_eq!(BackupMetadata::from_json(&compact).unwrap(), meta);
    }
}
