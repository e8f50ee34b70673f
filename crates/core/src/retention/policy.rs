//! A retention policy as stored (JSON in the catalog) and validated.

use jiff::tz::TimeZone;
use jiff::Span;
use serde::{Deserialize, Serialize};

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("keep-within {given:?}: {why}; give a span such as 7d, 2w, 36h or 1y 6mo")]
    BadSpan { given: String, why: String },
    #[error("time zone {given:?}: {why}; give an IANA name such as Europe/Berlin, or UTC")]
    BadTimeZone { given: String, why: String },
    #[error("max-chain-length 0: a chain holds at least one backup; give 1 or more")]
    ZeroChainLength,
}

/// What a volume (or a store's volumes by default) keeps. Counts of 0 are
/// rules that are off. Unknown fields of a newer blockback are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    /// A span such as `7d` or `1y 6mo` (jiff's friendly format or ISO 8601).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
    /// IANA time zone of the calendar periods; UTC when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Backups per chain (snapshots per base image): a backup that would
    /// exceed it starts a new chain. Not a retention rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_chain_length: Option<u32>,
}

impl Policy {
    /// True when no keep rule is set: such a policy keeps every backup.
    pub fn keeps_all(&self) -> bool {
        self.counts().iter().all(|(_, n)| *n == 0) && self.keep_within.is_none()
    }

    /// The calendar and last rules with their counts, in display order.
    pub(super) fn counts(&self) -> [(&'static str, u32); 6] {
        [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ]
    }

    /// Checks every field, so a bad policy is refused when set, not when
    /// a prune runs.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.within()?;
        self.zone()?;
        if self.max_chain_length == Some(0) {
            return Err(PolicyError::ZeroChainLength);
        }
        Ok(())
    }

    /// The keep-within span, parsed; it must be positive.
    pub fn within(&self) -> Result<Option<Span>, PolicyError> {
        let Some(given) = &self.keep_within else {
            return Ok(None);
        };
        let bad = |why: String| PolicyError::BadSpan {
            given: given.clone(),
            why,
        };
        let span: Span = given.trim().parse().map_err(|e| bad(format!("{e}")))?;
        if span.signum() <= 0 {
            return Err(bad("it must be longer than zero".into()));
        }
        Ok(Some(span))
    }

    /// The time zone of the calendar periods.
    pub fn zone(&self) -> Result<TimeZone, PolicyError> {
        match &self.time_zone {
            None => Ok(TimeZone::UTC),
            Some(name) => TimeZone::get(name).map_err(|e| PolicyError::BadTimeZone {
                given: name.clone(),
                why: format!("{e}"),
            }),
        }
    }

    /// `keep-daily 7, keep-within 2d, time zone Europe/Berlin`-style text.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .counts()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(rule, n)| format!("keep-{rule} {n}"))
            .collect();
        if let Some(span) = &self.keep_within {
            parts.push(format!("keep-within {span}"));
        }
        if parts.is_empty() {
            parts.push("keep everything".into());
        }
        if let Some(n) = self.max_chain_length {
            parts.push(format!("max-chain-length {n}"));
        }
        parts.push(format!(
            "time zone {}",
            self.time_zone.as_deref().unwrap_or("UTC")
        ));
        parts.join(", ")
    }
}
