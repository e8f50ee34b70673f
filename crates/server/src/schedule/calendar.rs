//! When a schedule fires: a cron expression (croner: 5 fields, or 6 with
//! seconds, and `@daily`-style aliases) or one of systemd's OnCalendar
//! shorthands, in an IANA time zone.

use croner::parser::{CronParser, Seconds};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// A parsed calendar spec.
#[derive(Debug, Clone)]
pub struct Calendar {
    spec: String,
    cron: Cron,
    zone: TimeZone,
}

/// systemd.time(7)'s shorthands, as cron expressions (systemd's `weekly`
/// is Monday at midnight, cron's `@weekly` Sunday: systemd's wins here).
const SHORTHANDS: &[(&str, &str)] = &[
    ("minutely", "* * * * *"),
    ("hourly", "0 * * * *"),
    ("daily", "0 0 * * *"),
    ("weekly", "0 0 * * MON"),
    ("monthly", "0 0 1 * *"),
    ("quarterly", "0 0 1 1,4,7,10 *"),
    ("semiannually", "0 0 1 1,7 *"),
    ("yearly", "0 0 1 1 *"),
    ("annually", "0 0 1 1 *"),
];

impl Calendar {
    /// Parses `spec` in time zone `zone` (an IANA name; UTC when `None`).
    pub fn parse(spec: &str, zone: Option<&str>) -> Result<Self, String> {
        let trimmed = spec.trim();
        let expression = SHORTHANDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
            .map_or(trimmed, |(_, cron)| cron);
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| {
                format!(
                    "calendar {spec:?}: {e}; give a cron expression such as \"0 2 * * *\" \
                     or daily, weekly, hourly, monthly"
                )
            })?;
        let zone = match zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|e| {
                format!("time zone {name:?}: {e}; give an IANA name such as Europe/Berlin, or UTC")
            })?,
        };
        Ok(Calendar {
            spec: spec.to_string(),
            cron,
            zone,
        })
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }

    fn zoned(&self, unix: f64) -> Option<Zoned> {
        let ts = Timestamp::from_nanosecond((unix * 1e9) as i128).ok()?;
        Some(ts.to_zoned(self.zone.clone()))
    }

    /// The first slot strictly after `unix` (Unix seconds).
    pub fn next_after(&self, unix: f64) -> Option<f64> {
        let next = self
            .cron
            .find_next_occurrence(&self.zoned(unix)?, false)
            .ok()?;
        Some(seconds(&next))
    }

    /// The last slot at or before `unix`.
    pub fn last_at_or_before(&self, unix: f64) -> Option<f64> {
        self.previous(unix, true)
    }

    /// The last slot strictly before `unix`.
    pub fn last_before(&self, unix: f64) -> Option<f64> {
        self.previous(unix, false)
    }

    fn previous(&self, unix: f64, inclusive: bool) -> Option<f64> {
        let prev = self
            .cron
            .find_previous_occurrence(&self.zoned(unix)?, inclusive)
            .ok()?;
        Some(seconds(&prev))
    }
}

fn seconds(z: &Zoned) -> f64 {
    z.timestamp().as_nanosecond() as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-05 (a Monday) 00:00 UTC.
    const MONDAY: f64 = 1_767_571_200.0;

    #[test]
    fn cron_and_shorthands_give_the_expected_slots() {
        let c = Calendar::parse("30 2 * * *", None).unwrap();
        assert_eq!(c.next_after(MONDAY), Some(MONDAY + 2.5 * 3600.0));
        assert_eq!(
            c.last_at_or_before(MONDAY + 2.5 * 3600.0),
            Some(MONDAY + 2.5 * 3600.0)
        );
        assert_eq!(
            c.last_before(MONDAY + 2.5 * 3600.0),
            Some(MONDAY + 2.5 * 3600.0 - 86400.0)
        );
        let weekly = Calendar::parse("weekly", None).unwrap();
        assert_eq!(weekly.next_after(MONDAY), Some(MONDAY + 7.0 * 86400.0));
        let hourly = Calendar::parse("Hourly", None).unwrap();
        assert_eq!(hourly.next_after(MONDAY + 1.0), Some(MONDAY + 3600.0));
        let seconds = Calendar::parse("*/10 * * * * *", None).unwrap();
        assert_eq!(seconds.next_after(MONDAY), Some(MONDAY + 10.0));
    }

    #[test]
    fn time_zones_shift_the_slots() {
        let c = Calendar::parse("0 2 * * *", Some("Europe/Berlin")).unwrap();
        // Berlin is UTC+1 in January: 02:00 there is 01:00 UTC.
        assert_eq!(c.next_after(MONDAY), Some(MONDAY + 3600.0));
    }

    #[test]
    fn bad_specs_and_zones_are_refused_with_a_hint() {
        let e = Calendar::parse("every day", None).unwrap_err();
        assert!(
            e.contains("every day") && e.contains("cron expression"),
            "{e}"
        );
        let e = Calendar::parse("0 70 * * *", None).unwrap_err();
        assert!(e.contains("0 70"), "{e}");
        let e = Calendar::parse("daily", Some("Mars/Olympus")).unwrap_err();
        assert!(e.contains("Mars/Olympus") && e.contains("IANA"), "{e}");
    }
}
