//! The planning function: a policy applied to one volume's backups.

use super::policy::{Policy, PolicyError};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::Serialize;
use uuid::Uuid;

/// One backup as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: Uuid,
    /// When it was taken: Unix seconds (UTC), as the catalog records it.
    pub time: f64,
    pub protected: bool,
    /// A failed backup: no restore point, counted by no rule.
    pub failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Keep,
    Remove,
}

/// Why a backup is kept (or, for `Failed` and `Expired`, removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    Protected,
    Newest,
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Within,
    /// Removed: a failed backup.
    Failed,
    /// Removed: no rule keeps it.
    Expired,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Protected => "protected",
            Reason::Newest => "newest",
            Reason::Last => "last",
            Reason::Hourly => "hourly",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
            Reason::Yearly => "yearly",
            Reason::Within => "within",
            Reason::Failed => "failed",
            Reason::Expired => "expired",
        }
    }
}

/// The verdict on one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: Uuid,
    pub action: Action,
    /// Every rule that keeps it, or why it goes.
    pub reasons: Vec<Reason>,
}

/// Applies `policy` to one volume's backups (any order). Returns one
/// decision per candidate, in the candidates' order. A policy that keeps
/// everything keeps every backup, failed ones included.
pub fn plan(candidates: &[Candidate], policy: &Policy) -> Result<Vec<Decision>, PolicyError> {
    let zone = policy.zone()?;
    let within = policy.within()?;
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); candidates.len()];
    let newest_first = newest_first(candidates);
    let live: Vec<usize> = newest_first
        .iter()
        .copied()
        .filter(|&i| !candidates[i].failed)
        .collect();
    for (i, c) in candidates.iter().enumerate() {
        if c.protected {
            reasons[i].push(Reason::Protected);
        }
    }
    if let Some(&newest) = live.first() {
        reasons[newest].push(Reason::Newest);
        if let Some(span) = within {
            let cutoff = zoned(candidates[newest].time, &zone)
                .checked_sub(span)
                .map(|z| z.timestamp().as_second())
                .unwrap_or(i64::MIN);
            for &i in &live {
                if seconds(candidates[i].time) >= cutoff {
                    reasons[i].push(Reason::Within);
                }
            }
        }
    }
    for (rule, count) in policy.counts() {
        let reason = rule_reason(rule);
        let mut kept = 0;
        let mut last_period = None;
        for &i in &live {
            if kept == count {
                break;
            }
            let period = period(reason, candidates[i].time, i, &zone);
            if last_period != Some(period) {
                last_period = Some(period);
                reasons[i].push(reason);
                kept += 1;
            }
        }
    }
    let keeps_all = policy.keeps_all();
    Ok(candidates
        .iter()
        .zip(reasons)
        .map(|(c, mut reasons)| {
            reasons.sort();
            let action = match (reasons.is_empty(), keeps_all) {
                (false, _) | (true, true) => Action::Keep,
                (true, false) => {
                    reasons.push(if c.failed {
                        Reason::Failed
                    } else {
                        Reason::Expired
                    });
                    Action::Remove
                }
            };
            Decision {
                id: c.id,
                action,
                reasons,
            }
        })
        .collect())
}

/// Indexes of `candidates`, newest first; of equal times the later given
/// counts as newer (the catalog lists oldest first).
fn newest_first(candidates: &[Candidate]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        candidates[b]
            .time
            .total_cmp(&candidates[a].time)
            .then(b.cmp(&a))
    });
    order
}

fn rule_reason(rule: &str) -> Reason {
    match rule {
        "last" => Reason::Last,
        "hourly" => Reason::Hourly,
        "daily" => Reason::Daily,
        "weekly" => Reason::Weekly,
        "monthly" => Reason::Monthly,
        _ => Reason::Yearly,
    }
}

/// The period of `rule` a backup falls in, as a number that grows with
/// time; keep-last puts every backup in a period of its own.
pub(super) fn period(rule: Reason, time: f64, index: usize, zone: &TimeZone) -> i64 {
    let z = zoned(time, zone);
    let (y, m, d, h) = (
        i64::from(z.year()),
        i64::from(z.month()),
        i64::from(z.day()),
        i64::from(z.hour()),
    );
    match rule {
        Reason::Hourly => ((y * 100 + m) * 100 + d) * 100 + h,
        Reason::Daily => (y * 100 + m) * 100 + d,
        Reason::Weekly => {
            let week = z.date().iso_week_date();
            i64::from(week.year()) * 100 + i64::from(week.week())
        }
        Reason::Monthly => y * 100 + m,
        Reason::Yearly => y,
        _ => index as i64,
    }
}

fn seconds(time: f64) -> i64 {
    time.floor() as i64
}

/// `time` in `zone`; times outside jiff's range (years -9999..9999) are
/// clamped, which only ever merges periods of absurd dates.
fn zoned(time: f64, zone: &TimeZone) -> Zoned {
    let ts = Timestamp::from_second(seconds(time)).unwrap_or(if time < 0.0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    ts.to_zoned(zone.clone())
}
