//! The reference design's names, kept so that existing backup pools work.
//!
//! - chain base image: `volume-<vid>.backup.<first backup id of the chain>`
//! - legacy base image: `volume-<vid>.backup.base`
//! - full-copy image (Cinder, non-RBD source): `volume-<vid>.backup.<bid>`
//! - backup snapshot (same name on source and base):
//!   `backup.<bid>.snap.<unix time as float>`, recognised by
//!   `^backup\.([a-z0-9\-]+?)\.snap\.(.+)$`.

use regex::Regex;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Name of the base image of the chain started by backup `first_backup`.
pub fn chain_base_name(volume_id: &str, first_backup: &str) -> String {
    format!("volume-{volume_id}.backup.{first_backup}")
}

/// Name of the single base image of the legacy (seed) layout.
pub fn legacy_base_name(volume_id: &str) -> String {
    format!("volume-{volume_id}.backup.base")
}

/// Name of the snapshot taken for backup `backup_id` at `at`.
pub fn backup_snap_name(backup_id: &str, at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    format!("backup.{backup_id}.snap.{secs:.6}")
}

/// A parsed backup snapshot name.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSnap {
    pub backup_id: String,
    /// The timestamp part, as a number (0.0 when it is not one).
    pub time: f64,
}

fn backup_snap_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^backup\.([a-z0-9\-]+?)\.snap\.(.+)$").expect("valid regex"))
}

/// Parses a backup snapshot name; `None` for any other snapshot.
pub fn parse_backup_snap(name: &str) -> Option<BackupSnap> {
    let caps = backup_snap_regex().captures(name)?;
    Some(BackupSnap {
        backup_id: caps[1].to_string(),
        time: caps[2].parse().unwrap_or(0.0),
    })
}

/// The newest backup snapshot among `names` (by the timestamp in the name).
pub fn newest_backup_snap<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .filter_map(|n| parse_backup_snap(n).map(|p| (n, p.time)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| n)
}

/// Snapshot names are kept to the characters the rbd CLI accepts everywhere.
pub fn is_valid_snap_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 4096
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_snapshot_listing_filters_by_the_reference_regex() {
        let names = [
            "backup.1234.snap.1.5",
            "bbbackup.x.snap.y",
            "backup.x.wambam.y",
            "backup.abc-def.snap.1700000000.25",
            "backup.9.snap.x",
        ];
        let matching: Vec<_> = names
            .iter()
            .filter(|n| parse_backup_snap(n).is_some())
            .collect();
        assert_eq!(matching.len(), 3);
    }

    #[test]
    fn newest_backup_snapshot_is_the_one_with_the_newest_timestamp() {
        let names = [
            "backup.a.snap.10.5",
            "backup.b.snap.9.0",
            "other",
            "backup.c.snap.100.0",
        ];
        assert_eq!(newest_backup_snap(names), Some("backup.c.snap.100.0"));
        assert_eq!(newest_backup_snap(["nope"]), None);
    }

    #[test]
    fn snap_name_round_trips_the_backup_id() {
        let name = backup_snap_name(
            "5e1c-77",
            SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1500),
        );
        assert_eq!(name, "backup.5e1c-77.snap.1.500000");
        assert_eq!(parse_backup_snap(&name).unwrap().backup_id, "5e1c-77");
    }

    #[test]
    fn base_names_follow_the_reference() {
        assert_eq!(chain_base_name("v", "b"), "volume-v.backup.b");
        assert_eq!(legacy_base_name("v"), "volume-v.backup.base");
    }
}
