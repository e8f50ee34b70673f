//! The scheduler's decisions, as plain functions of their inputs (no
//! clock, no catalog): which slot of a schedule is due for a volume, how
//! long its random delay is, and whether the backup starts a new chain.

use super::calendar::Calendar;
use crate::jobs::request::BackupMode;
use blockback_core::catalog::{BackupKind, BackupRecord, BackupStatus, VolumeRecord};
use sha2::{Digest, Sha256};

/// One schedule, parsed from the configuration.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// Volume names or ids; `*` is every registered volume.
    pub volumes: Vec<String>,
    pub calendar: Calendar,
    /// Each run starts up to this many seconds after its slot.
    pub random_delay: f64,
    /// A new chain after this many incrementals (0: no limit).
    pub full_every: u32,
    /// A new chain when the chain's full backup is this many seconds old
    /// (0: no limit).
    pub full_after: f64,
    /// Apply the volume's retention policy after each successful run.
    pub prune: bool,
}

impl Schedule {
    pub fn applies_to(&self, volume: &VolumeRecord) -> bool {
        let id = volume.id.to_string();
        self.volumes
            .iter()
            .any(|v| v == "*" || *v == volume.name || *v == id)
    }

    /// The run of `slot` for `volume` starts this many seconds after the
    /// slot: spread over `random_delay` so volumes (and hosts) do not all
    /// start at once, and the same on every call, so a restart does not
    /// move a run.
    pub fn delay(&self, volume: &VolumeRecord, slot: f64) -> f64 {
        if self.random_delay <= 0.0 {
            return 0.0;
        }
        let digest = Sha256::new()
            .chain_update(self.name.as_bytes())
            .chain_update(volume.id.as_bytes())
            .chain_update(slot.to_le_bytes())
            .finalize();
        let mut word = [0u8; 8];
        word.copy_from_slice(&digest[..8]);
        let fraction = u64::from_le_bytes(word) as f64 / u64::MAX as f64;
        fraction * self.random_delay
    }

    /// The slot to run now for `volume`, if any: the latest slot after
    /// `last` (the slot of the previous run) whose start time (slot plus
    /// delay) has come by `now`. However many slots passed while the
    /// service was down, that is one run, for the latest of them.
    pub fn due_slot(&self, volume: &VolumeRecord, last: f64, now: f64) -> Option<f64> {
        let latest = self.calendar.last_at_or_before(now)?;
        // The latest slot's delay may not be over yet while the one
        // before it was missed: that one runs now.
        let before = self.calendar.last_before(latest);
        [Some(latest), before]
            .into_iter()
            .flatten()
            .find(|&slot| slot > last && slot + self.delay(volume, slot) <= now)
    }

    /// Full or auto for a run at `now`, from the volume's available
    /// backups in the store (oldest first): full once the chain holds
    /// `full_every` incrementals or its full backup is `full_after` old.
    pub fn mode(&self, backups: &[BackupRecord], now: f64) -> BackupMode {
        let available: Vec<&BackupRecord> = backups
            .iter()
            .filter(|b| b.status == BackupStatus::Available)
            .collect();
        let Some(full_at) = available.iter().rposition(|b| b.kind == BackupKind::Full) else {
            return BackupMode::Auto;
        };
        let incrementals = available[full_at + 1..]
            .iter()
            .filter(|b| b.kind == BackupKind::Incremental)
            .count();
        let full_age = now - available[full_at].created_at;
        let by_count = self.full_every > 0 && incrementals >= self.full_every as usize;
        let by_age = self.full_after > 0.0 && full_age >= self.full_after;
        match by_count || by_age {
            true => BackupMode::Full,
            false => BackupMode::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const T0: f64 = 1_767_571_200.0; // 2026-01-05 00:00 UTC
    const HOUR: f64 = 3600.0;

    fn schedule(spec: &str, delay: f64) -> Schedule {
        Schedule {
            name: "nightly".into(),
            volumes: vec!["db".into()],
            calendar: Calendar::parse(spec, None).unwrap(),
            random_delay: delay,
            full_every: 0,
            full_after: 0.0,
            prune: true,
        }
    }

    fn volume(name: &str) -> VolumeRecord {
        VolumeRecord::new(Uuid::new_v4(), format!("/dev/{name}"), name.into(), T0)
    }

    fn backup(kind: BackupKind, at: f64) -> BackupRecord {
        BackupRecord {
            id: Uuid::new_v4(),
            volume_id: Uuid::nil(),
            source: "/dev/db".into(),
            size: 1,
            parent: None,
            kind,
            status: BackupStatus::Available,
            store: "store".into(),
            image: "base".into(),
            snapshot: "snap".into(),
            bytes_read: 0,
            bytes_written: 0,
            bytes_stored: 0,
            checksum: None,
            created_at: at,
            updated_at: at,
            completed_at: Some(at),
            error: None,
            pid: None,
            created_base: kind == BackupKind::Full,
            metadata: Default::default(),
        }
    }

    #[test]
    fn a_slot_is_due_once_and_downtime_gives_one_run() {
        let s = schedule("hourly", 0.0);
        let v = volume("db");
        assert_eq!(s.due_slot(&v, T0, T0 + 10.0), None, "the slot already ran");
        assert_eq!(s.due_slot(&v, T0, T0 + HOUR), Some(T0 + HOUR));
        // Down from T0 + 1 h to T0 + 5.5 h: one run, for the latest slot.
        assert_eq!(
            s.due_slot(&v, T0 + HOUR, T0 + 5.5 * HOUR),
            Some(T0 + 5.0 * HOUR)
        );
        assert_eq!(s.due_slot(&v, T0 + 5.0 * HOUR, T0 + 5.6 * HOUR), None);
    }

    #[test]
    fn the_random_delay_is_stable_bounded_and_spread() {
        let s = schedule("hourly", 600.0);
        let (a, b) = (volume("a"), volume("b"));
        let d = s.delay(&a, T0 + HOUR);
        assert!((0.0..600.0).contains(&d));
        assert_eq!(d, s.delay(&a, T0 + HOUR), "the same run, the same delay");
        assert_ne!(d, s.delay(&b, T0 + HOUR), "volumes are spread");
        assert_eq!(s.due_slot(&a, T0, T0 + HOUR + d - 1.0), None);
        assert_eq!(s.due_slot(&a, T0, T0 + HOUR + d), Some(T0 + HOUR));
    }

    #[test]
    fn a_missed_slot_runs_while_the_latest_waits_for_its_delay() {
        let s = schedule("hourly", 3000.0);
        let v = volume("db");
        let d2 = s.delay(&v, T0 + 2.0 * HOUR);
        let d1 = s.delay(&v, T0 + HOUR);
        let now = T0 + 2.0 * HOUR + d2 / 2.0;
        if now >= T0 + HOUR + d1 {
            assert_eq!(s.due_slot(&v, T0, now), Some(T0 + HOUR));
        }
    }

    #[test]
    fn full_backups_by_count_and_by_age() {
        let mut s = schedule("daily", 0.0);
        let day = 86400.0;
        let history = vec![
            backup(BackupKind::Full, T0),
            backup(BackupKind::Incremental, T0 + day),
            backup(BackupKind::Incremental, T0 + 2.0 * day),
        ];
        assert_eq!(s.mode(&[], T0), BackupMode::Auto);
        assert_eq!(s.mode(&history, T0 + 3.0 * day), BackupMode::Auto);
        s.full_every = 2;
        assert_eq!(s.mode(&history, T0 + 3.0 * day), BackupMode::Full);
        assert_eq!(s.mode(&history[..2], T0 + 3.0 * day), BackupMode::Auto);
        s.full_every = 0;
        s.full_after = 7.0 * day;
        assert_eq!(s.mode(&history, T0 + 6.0 * day), BackupMode::Auto);
        assert_eq!(s.mode(&history, T0 + 7.0 * day), BackupMode::Full);
        let mut failed = history.clone();
        failed.push(backup(BackupKind::Full, T0 + 3.0 * day));
        failed[3].status = BackupStatus::Error;
        assert_eq!(
            s.mode(&failed, T0 + 7.0 * day),
            BackupMode::Full,
            "a failed full starts nothing"
        );
    }

    #[test]
    fn volumes_match_by_name_id_or_star() {
        let mut s = schedule("daily", 0.0);
        let (db, web) = (volume("db"), volume("web"));
        assert!(s.applies_to(&db) && !s.applies_to(&web));
        s.volumes = vec![web.id.to_string()];
        assert!(s.applies_to(&web) && !s.applies_to(&db));
        s.volumes = vec!["*".into()];
        assert!(s.applies_to(&web) && s.applies_to(&db));
    }
}
