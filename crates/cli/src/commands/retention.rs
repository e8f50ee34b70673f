//! `backup protect/unprotect` and `policy set/show/unset`.
//!
//! Policies live in the catalog (`policies` table): per volume, or as the
//! default of a store for its volumes without one of their own, so every
//! process on the catalog (CLI runs, timers, the service) applies the same.

use crate::args::PolicySetArgs;
use crate::output::emit;
use crate::session::Session;
use anyhow::{bail, Result};
use blockback_core::catalog::{effective_policy, resolve_backup, PolicyScope, VolumeRecord};
use blockback_core::retention::Policy;
use uuid::Uuid;

pub fn protect(session: &Session, backup: &str, protected: bool) -> Result<()> {
    let record = resolve_backup(session.catalog.as_ref(), backup)?;
    session.catalog.set_protected(record.id, protected)?;
    let word = if protected {
        "protected"
    } else {
        "unprotected"
    };
    emit(
        session.config.json,
        &serde_json::json!({ "backup": record.id, "protected": protected }),
        || format!("backup {} {word}", record.id),
    )
}

/// A volume of the catalog named by its source (as `backup create` was
/// given it, or as recorded), its id or a unique id prefix, or its name.
pub fn resolve_volume(session: &Session, given: &str) -> Result<VolumeRecord> {
    let volumes = session.catalog.list_volumes()?;
    let label = session.ops().volume(given).and_then(|v| v.label()).ok();
    let by = |matches: &dyn Fn(&VolumeRecord) -> bool| -> Vec<&VolumeRecord> {
        volumes.iter().filter(|v| matches(v)).collect()
    };
    let given_lower = given.to_ascii_lowercase();
    let candidates = [
        by(&|v| Uuid::parse_str(given).is_ok_and(|id| id == v.id)),
        by(&|v| v.source == given || label.as_deref() == Some(v.source.as_str())),
        by(&|v| !given.is_empty() && v.id.to_string().starts_with(&given_lower)),
        by(&|v| v.name == given),
    ];
    for found in candidates {
        match found.as_slice() {
            [] => continue,
            [one] => return Ok((*one).clone()),
            several => {
                let names: Vec<String> = several
                    .iter()
                    .map(|v| format!("{} ({})", v.id, v.source))
                    .collect();
                bail!(
                    "volume {given:?} is ambiguous: it matches {}; give its source or id",
                    names.join(", ")
                );
            }
        }
    }
    bail!("volume {given:?} is not in the catalog; `blockback backup list` shows the sources of the known volumes")
}

/// The scope `--volume` names, or the store's default.
fn scope_of(session: &Session, volume: Option<&str>) -> Result<(PolicyScope, String)> {
    Ok(match volume {
        Some(v) => {
            let v = resolve_volume(session, v)?;
            let what = format!("volume {} ({})", v.name, v.source);
            (PolicyScope::Volume(v.id), what)
        }
        None => {
            let label = session.config.settings.store.label();
            let what = format!("store {label} (default for its volumes)");
            (PolicyScope::Store(label), what)
        }
    })
}

pub fn policy_set(session: &Session, args: &PolicySetArgs) -> Result<()> {
    let (scope, what) = scope_of(session, args.volume.as_deref())?;
    let policy = Policy {
        keep_last: args.keep_last,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
        keep_within: args.keep_within.clone(),
        time_zone: Some(args.time_zone.clone().unwrap_or_else(system_zone)),
        max_chain_length: args.max_chain_length,
    };
    policy.validate()?;
    session.catalog.set_policy(&scope, Some(&policy))?;
    emit(
        session.config.json,
        &serde_json::json!({ "scope": scope.key(), "policy": policy }),
        || format!("{what}: {}", policy.describe()),
    )
}

/// The system's time zone by its IANA name, recorded so that every host
/// (and a later change of the system's zone) counts the same days.
fn system_zone() -> String {
    jiff::tz::TimeZone::system()
        .iana_name()
        .unwrap_or("UTC")
        .to_string()
}

pub fn policy_unset(session: &Session, volume: Option<&str>) -> Result<()> {
    let (scope, what) = scope_of(session, volume)?;
    if session.catalog.policy(&scope)?.is_none() {
        bail!("{what} has no policy of its own; `blockback policy show` lists the policies set");
    }
    session.catalog.set_policy(&scope, None)?;
    emit(
        session.config.json,
        &serde_json::json!({ "scope": scope.key(), "policy": null }),
        || format!("{what}: policy removed"),
    )
}

pub fn policy_show(session: &Session, volume: Option<&str>) -> Result<()> {
    let Some(given) = volume else {
        return show_all(session);
    };
    let v = resolve_volume(session, given)?;
    let store = session.config.settings.store.label();
    let found = effective_policy(session.catalog.as_ref(), v.id, &store)?;
    let json = serde_json::json!({
        "volume": v, "store": store,
        "scope": found.as_ref().map(|(s, _)| s.key()),
        "policy": found.as_ref().map(|(_, p)| p),
    });
    emit(session.config.json, &json, || match &found {
        Some((scope, p)) => format!(
            "volume {} ({}) in {store}: {} ({})",
            v.name,
            v.source,
            p.describe(),
            scope_words(scope)
        ),
        None => format!(
            "volume {} ({}) in {store}: no policy, every backup is kept",
            v.name, v.source
        ),
    })
}

fn show_all(session: &Session) -> Result<()> {
    let all = session.catalog.list_policies()?;
    let volumes = session.catalog.list_volumes()?;
    let describe_scope = |scope: &PolicyScope| match scope {
        PolicyScope::Store(label) => format!("store {label}"),
        PolicyScope::Volume(id) => match volumes.iter().find(|v| v.id == *id) {
            Some(v) => format!("volume {} ({})", v.name, v.source),
            None => format!("volume {id}"),
        },
    };
    let json: Vec<_> = all
        .iter()
        .map(|(s, p)| serde_json::json!({ "scope": s.key(), "policy": p }))
        .collect();
    emit(session.config.json, &json, || {
        if all.is_empty() {
            return "no policies set: every backup is kept".into();
        }
        all.iter()
            .map(|(s, p)| format!("{}: {}", describe_scope(s), p.describe()))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Where a policy that applies comes from.
pub fn scope_words(scope: &PolicyScope) -> &'static str {
    match scope {
        PolicyScope::Volume(_) => "the volume's own",
        PolicyScope::Store(_) => "the store's default",
    }
}
