//! Cinder's backup and volume objects, built from catalog records (and,
//! for a backup whose job has not created its record yet, from the job).

use super::context::Ctx;
use crate::jobs::request::{label, JobRequest};
use blockback_core::catalog::{
    BackupKind, BackupRecord, JobKind, JobRecord, JobState, VolumeRecord,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Cinder's timestamp format (UTC, no zone).
pub fn timestamp(unix: f64) -> Value {
    let secs = unix.floor() as i64;
    let micros = ((unix - unix.floor()) * 1e6).round().min(999_999.0) as u32;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    Value::String(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Bytes to Cinder's whole GiB (rounded up).
pub fn gib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 30)
}

/// What a backup view is made from.
pub struct BackupFacts<'a> {
    pub id: String,
    pub status: &'a str,
    pub size: u64,
    pub volume_id: String,
    pub created_at: f64,
    pub updated_at: f64,
    pub fail_reason: Option<String>,
    pub incremental: bool,
    pub has_dependents: bool,
    pub labels: BTreeMap<String, String>,
    pub store_container: Option<String>,
}

impl<'a> BackupFacts<'a> {
    pub fn of_record(b: &'a BackupRecord, has_dependents: bool) -> Self {
        BackupFacts {
            id: b.id.to_string(),
            status: b.status.as_str(),
            size: b.size,
            volume_id: b.volume_id.to_string(),
            created_at: b.created_at,
            updated_at: b.updated_at,
            fail_reason: b.error.clone(),
            incremental: b.kind == BackupKind::Incremental,
            has_dependents,
            labels: b.metadata.clone(),
            store_container: b.store.strip_prefix("rbd:").map(str::to_string),
        }
    }

    /// A backup whose job has not created its record: `creating`.
    pub fn of_job(j: &'a JobRecord, volume_size: Option<u64>) -> Option<Self> {
        let Ok(JobRequest::Backup {
            backup_id,
            labels,
            mode,
            ..
        }) = JobRequest::from_json(&j.request)
        else {
            return None;
        };
        if j.kind != JobKind::Backup || j.state.is_final() {
            return None;
        }
        Some(BackupFacts {
            id: backup_id.to_string(),
            status: "creating",
            size: volume_size.unwrap_or(0),
            volume_id: j.volume_id.to_string(),
            created_at: j.created_at,
            updated_at: j.updated_at,
            fail_reason: None,
            incremental: mode == crate::jobs::request::BackupMode::Incremental,
            has_dependents: false,
            labels,
            store_container: None,
        })
    }
}

fn opt(v: Option<&String>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.clone()))
}

/// The detail object at the request's microversion.
pub fn backup_detail(ctx: &Ctx, f: &BackupFacts<'_>) -> Value {
    let container = f
        .labels
        .get(label::CONTAINER)
        .cloned()
        .or(f.store_container.clone());
    let mut v = json!({
        "id": f.id,
        "status": f.status,
        "size": gib(f.size),
        "object_count": 0,
        "availability_zone": null,
        "container": container,
        "created_at": timestamp(f.created_at),
        "updated_at": timestamp(f.updated_at),
        "name": opt(f.labels.get(label::NAME)),
        "description": opt(f.labels.get(label::DESCRIPTION)),
        "fail_reason": f.fail_reason,
        "volume_id": f.volume_id,
        "links": ctx.links("backups", &f.id),
        "is_incremental": f.incremental,
        "has_dependent_backups": f.has_dependents,
        "snapshot_id": null,
        "data_timestamp": timestamp(f.created_at),
    });
    let obj = v.as_object_mut().expect("an object");
    if ctx.at_least(18) {
        obj.insert(
            "os-backup-project-attr:project_id".into(),
            json!(ctx.project()),
        );
    }
    if ctx.at_least(43) {
        obj.insert("metadata".into(), Value::Object(backup_metadata(&f.labels)));
    }
    if ctx.at_least(56) {
        obj.insert("user_id".into(), json!(ctx.caller.user));
    }
    v
}

/// Cinder's backup metadata (3.43), kept under `backup.meta.` labels.
pub fn backup_metadata(labels: &BTreeMap<String, String>) -> Map<String, Value> {
    labels
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(label::META)?.to_string(), json!(v))))
        .collect()
}

/// `{"id", "name", "links"}`.
pub fn summary(detail: &Value) -> Value {
    json!({"id": detail["id"], "name": detail["name"], "links": detail["links"]})
}

/// A registered volume, as Cinder's volume detail view.
pub fn volume_detail(ctx: &Ctx, v: &VolumeRecord, active: &[JobRecord]) -> Value {
    let id = v.id.to_string();
    let busy = active
        .iter()
        .find(|j| j.state == JobState::Running && j.volume_id == v.id);
    let status = match busy.map(|j| j.kind) {
        Some(JobKind::Backup) => "backing-up",
        Some(JobKind::Restore) => "restoring-backup",
        _ => "available",
    };
    json!({
        "id": id,
        "name": v.name,
        "status": status,
        "size": gib(v.size.unwrap_or(0)),
        "availability_zone": "nova",
        "created_at": timestamp(v.created_at),
        "updated_at": null,
        "description": null,
        "volume_type": null,
        "bootable": "false",
        "encrypted": false,
        "multiattach": false,
        "snapshot_id": null,
        "source_volid": null,
        "user_id": ctx.caller.user,
        "metadata": {},
        "attachments": [],
        "replication_status": null,
        "consistencygroup_id": null,
        "links": ctx.links("volumes", &id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_cinders() {
        assert_eq!(timestamp(0.0), "1970-01-01T00:00:00.000000");
        assert_eq!(
            timestamp(1_687_521_368.691468),
            "2023-06-23T11:56:08.691468"
        );
        assert_eq!(timestamp(951_782_400.5), "2000-02-29T00:00:00.500000");
    }

    #[test]
    fn sizes_round_up_to_gib() {
        assert_eq!(
            (gib(0), gib(1), gib(1 << 30), gib((1 << 30) + 1)),
            (0, 1, 1, 2)
        );
    }
}
