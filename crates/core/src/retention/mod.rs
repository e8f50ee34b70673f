//! Retention: which backups of one volume a policy keeps.
//!
//! A [`Policy`] names rules as restic `forget` and Proxmox Backup Server
//! prune jobs do (keep-last, keep-hourly ... keep-yearly, keep-within);
//! [`plan`] applies it to a volume's backups and says, for each, the rules
//! that keep it or that it goes. It is a pure function of the backups'
//! times and flags: no catalog, no store, no clock, so the CLI's `prune`,
//! its `--dry-run` and the service (after each successful backup) all get
//! the same answer for the same history.
//!
//! Rules, each on its own (a backup kept by several rules counts for each):
//! - keep-last N: the N newest backups.
//! - keep-hourly/daily/weekly/monthly/yearly N: the newest backup of each
//!   of the N newest calendar periods that have a backup, in the policy's
//!   time zone (weeks are ISO weeks, Monday to Sunday).
//! - keep-within SPAN: every backup no older than SPAN before the newest
//!   backup (not before now: backups that stopped coming are not all
//!   expired at once), calendar-aware (`1mo` is a month in the time zone).
//!
//! Always kept, whatever the rules: protected backups and the newest
//! backup. Failed backups are never a restore point: they count for no
//! rule and go unless protected. A policy without keep rules keeps
//! everything. Removing what the plan removes and planning again removes
//! nothing more (the newest backup of every counted period stays).

mod plan;
mod policy;

pub use plan::{plan, Action, Candidate, Decision, Reason};
pub use policy::{Policy, PolicyError};

#[cfg(test)]
mod tests;
