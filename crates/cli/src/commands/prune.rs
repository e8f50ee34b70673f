//! `prune [--volume V] [--dry-run]`: the engine's plan, shown backup by
//! backup, then executed; a local store is garbage-collected in the same
//! run (Ceph frees an RBD store's space as snapshots and bases go).

use super::retention::{resolve_volume, scope_words};
use crate::output::{emit, gc_text, local_time};
use crate::session::Session;
use anyhow::{bail, Result};
use blockback_core::engine::{PlannedBackup, PruneOutcome, PrunePlan, VolumePlan};
use blockback_core::store::GcStats;
use blockback_ops::StoreHandle;

pub fn prune(session: &Session, volume: Option<&str>, dry_run: bool) -> Result<()> {
    let ops = session.ops();
    let store = ops.store(false)?;
    let label = session.config.settings.store.label();
    let volume = volume.map(|v| resolve_volume(session, v)).transpose()?;
    let engine = ops.engine();
    let plan = engine.plan_prune(&label, volume.map(|v| v.id))?;
    let mut result = Pruned::default();
    if !dry_run {
        let outcome = engine.prune(&plan, store.pool(), &|b| ops.open_source_head(b))?;
        if !outcome.removed.is_empty() {
            result.gc = collect_garbage(session, &store);
        }
        result.outcome = outcome;
    }
    emit(
        session.config.json,
        &to_json(&plan, &result, dry_run),
        || text(&plan, &result, dry_run),
    )?;
    if !result.outcome.failed.is_empty() {
        bail!(
            "prune: {} of {} removals failed (the others were done); run prune again once the cause is fixed",
            result.outcome.failed.len(),
            plan.removals().count()
        );
    }
    Ok(())
}

#[derive(Default)]
struct Pruned {
    outcome: PruneOutcome,
    /// Local stores: what gc freed, or why it could not run.
    gc: Option<Result<GcStats, String>>,
}

/// gc of a local store; a busy store (a backup of another volume running)
/// is not a failed prune: the removals are done, gc can run later.
fn collect_garbage(session: &Session, store: &StoreHandle) -> Option<Result<GcStats, String>> {
    let local = store.local("gc").ok()?;
    Some(local.gc(&session.progress).map_err(|e| {
        format!("{e}; the space of the removed backups is reclaimed by `blockback gc`")
    }))
}

fn verdict(p: &PlannedBackup) -> (&'static str, String) {
    match &p.decision {
        None => ("busy", format!("{}: left alone", p.backup.status)),
        Some(d) => {
            let reasons: Vec<&str> = d.reasons.iter().map(|r| r.as_str()).collect();
            let word = if p.is_removed() { "remove" } else { "keep" };
            (word, reasons.join(", "))
        }
    }
}

fn text(plan: &PrunePlan, result: &Pruned, dry_run: bool) -> String {
    if plan.volumes.is_empty() {
        return format!("no backups in {}", plan.store);
    }
    let mut lines = Vec::new();
    for v in &plan.volumes {
        lines.push(volume_heading(v));
        for p in &v.backups {
            let (word, why) = verdict(p);
            lines.push(format!(
                "  {word:<6}  {}  {}  {:<11}  {}",
                p.backup.id,
                local_time(p.backup.created_at),
                p.backup.kind.as_str(),
                why
            ));
        }
    }
    let planned = plan.removals().count();
    lines.push(match dry_run {
        true => format!(
            "dry run: would remove {planned} of {} backups in {}",
            plan.volumes.iter().map(|v| v.backups.len()).sum::<usize>(),
            plan.store
        ),
        false => format!(
            "removed {} backups, {} failed",
            result.outcome.removed.len(),
            result.outcome.failed.len()
        ),
    });
    for (id, e) in &result.outcome.failed {
        lines.push(format!("  failed to remove {id}: {e}"));
    }
    match &result.gc {
        Some(Ok(stats)) => lines.push(gc_text(stats)),
        Some(Err(e)) => lines.push(format!("gc did not run: {e}")),
        None => {}
    }
    lines.join("\n")
}

fn volume_heading(v: &VolumePlan) -> String {
    let name = match v.volume.name.as_str() {
        "" => v.volume.id.to_string(),
        name => name.to_string(),
    };
    let policy = match &v.policy {
        Some((scope, p)) => format!("{} ({})", p.describe(), scope_words(scope)),
        None => "no policy, every backup is kept".into(),
    };
    format!("volume {name} ({}): {policy}", v.volume.source)
}

fn to_json(plan: &PrunePlan, result: &Pruned, dry_run: bool) -> serde_json::Value {
    let volumes: Vec<_> = plan
        .volumes
        .iter()
        .map(|v| {
            let backups: Vec<_> = v
                .backups
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "id": p.backup.id, "created_at": p.backup.created_at,
                        "kind": p.backup.kind, "status": p.backup.status,
                        "image": p.backup.image, "protected": p.protected,
                        "action": p.decision.as_ref().map(|d| d.action),
                        "reasons": p.decision.as_ref().map(|d| &d.reasons),
                    })
                })
                .collect();
            serde_json::json!({
                "volume": v.volume,
                "scope": v.policy.as_ref().map(|(s, _)| s.key()),
                "policy": v.policy.as_ref().map(|(_, p)| p),
                "backups": backups,
            })
        })
        .collect();
    let failed: Vec<_> = result
        .outcome
        .failed
        .iter()
        .map(|(id, e)| serde_json::json!({ "id": id, "error": e }))
        .collect();
    let (gc, gc_error) = match &result.gc {
        Some(Ok(s)) => (serde_json::to_value(s).unwrap_or_default(), None),
        Some(Err(e)) => (serde_json::Value::Null, Some(e.clone())),
        None => (serde_json::Value::Null, None),
    };
    serde_json::json!({
        "store": plan.store, "dry_run": dry_run, "volumes": volumes,
        "removed": result.outcome.removed, "failed": failed,
        "gc": gc, "gc_error": gc_error,
        "freed_bytes": result.gc.as_ref().and_then(|g| g.as_ref().ok()).map(|s| s.bytes_freed),
    })
}
