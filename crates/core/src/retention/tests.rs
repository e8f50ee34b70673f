use super::plan::period;
use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

const HOUR: f64 = 3600.0;
const DAY: f64 = 24.0 * HOUR;
/// 2024-01-01T00:00:00Z, a Monday.
const START: f64 = 1_704_067_200.0;

fn candidate(time: f64) -> Candidate {
    Candidate {
        id: Uuid::new_v4(),
        time,
        protected: false,
        failed: false,
    }
}

fn kept(candidates: &[Candidate], policy: &Policy) -> BTreeSet<usize> {
    plan(candidates, policy)
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, d)| d.action == Action::Keep)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn daily_keeps_the_newest_of_each_of_the_newest_days() {
    // Three backups a day for five days.
    let backups: Vec<Candidate> = (0..15)
        .map(|i| candidate(START + (i / 3) as f64 * DAY + (i % 3) as f64 * 6.0 * HOUR))
        .collect();
    let policy = Policy {
        keep_daily: 3,
        ..Policy::default()
    };
    // Days 4, 3, 2: their last backups are 14, 11, 8.
    assert_eq!(kept(&backups, &policy), BTreeSet::from([8, 11, 14]));
    let decisions = plan(&backups, &policy).unwrap();
    assert_eq!(decisions[14].reasons, vec![Reason::Newest, Reason::Daily]);
    assert_eq!(decisions[0].reasons, vec![Reason::Expired]);
}

#[test]
fn days_follow_the_policy_time_zone() {
    // 23:30 UTC and 00:30 UTC the next day: two days in UTC, one day in
    // Europe/Berlin (00:30 and 01:30 local).
    let backups = [candidate(START - 0.5 * HOUR), candidate(START + 0.5 * HOUR)];
    let mut policy = Policy {
        keep_daily: 2,
        ..Policy::default()
    };
    assert_eq!(kept(&backups, &policy).len(), 2);
    policy.time_zone = Some("Europe/Berlin".into());
    assert_eq!(kept(&backups, &policy), BTreeSet::from([1]));
}

#[test]
fn weeks_are_iso_weeks() {
    // Sunday 2024-01-07 23:00 and Monday 2024-01-08 01:00 (UTC).
    let sunday = START + 6.0 * DAY + 23.0 * HOUR;
    let zone = jiff::tz::TimeZone::UTC;
    assert_ne!(
        period(Reason::Weekly, sunday, 0, &zone),
        period(Reason::Weekly, sunday + 2.0 * HOUR, 0, &zone)
    );
    assert_eq!(
        period(Reason::Weekly, START, 0, &zone),
        period(Reason::Weekly, sunday, 0, &zone)
    );
}

#[test]
fn within_counts_back_from_the_newest_backup_not_from_now() {
    let backups: Vec<Candidate> = (0..10).map(|i| candidate(START + i as f64 * DAY)).collect();
    let policy = Policy {
        keep_within: Some("3d".into()),
        ..Policy::default()
    };
    assert_eq!(kept(&backups, &policy), BTreeSet::from([6, 7, 8, 9]));
}

#[test]
fn protected_newest_and_failed() {
    let mut backups: Vec<Candidate> = (0..5).map(|i| candidate(START + i as f64 * DAY)).collect();
    backups[0].protected = true;
    backups[4].failed = true;
    backups[2].failed = true;
    backups[2].protected = true;
    let policy = Policy {
        keep_last: 1,
        ..Policy::default()
    };
    let decisions = plan(&backups, &policy).unwrap();
    let reasons: Vec<_> = decisions.iter().map(|d| d.reasons.clone()).collect();
    assert_eq!(
        reasons,
        vec![
            vec![Reason::Protected],
            vec![Reason::Expired],
            vec![Reason::Protected],
            vec![Reason::Newest, Reason::Last],
            vec![Reason::Failed],
        ]
    );
}

#[test]
fn a_policy_without_rules_keeps_everything() {
    let mut backups: Vec<Candidate> = (0..3).map(|i| candidate(START + i as f64)).collect();
    backups[0].failed = true;
    let policy = Policy {
        max_chain_length: Some(5),
        ..Policy::default()
    };
    assert!(policy.keeps_all());
    assert_eq!(kept(&backups, &policy).len(), 3);
}

#[test]
fn bad_policies_are_refused_with_the_value() {
    let bad_span = Policy {
        keep_within: Some("soon".into()),
        ..Policy::default()
    };
    assert!(bad_span
        .validate()
        .unwrap_err()
        .to_string()
        .contains("\"soon\""));
    let negative = Policy {
        keep_within: Some("-2d".into()),
        ..Policy::default()
    };
    assert!(negative.validate().is_err());
    let zone = Policy {
        time_zone: Some("Mars/Olympus".into()),
        ..Policy::default()
    };
    assert!(zone
        .validate()
        .unwrap_err()
        .to_string()
        .contains("Mars/Olympus"));
    let chain = Policy {
        max_chain_length: Some(0),
        ..Policy::default()
    };
    assert_eq!(chain.validate(), Err(PolicyError::ZeroChainLength));
}

#[test]
fn stored_json_ignores_unknown_fields_and_omits_defaults() {
    let p: Policy = serde_json::from_str(r#"{"keep_daily":7,"from_the_future":1}"#).unwrap();
    assert_eq!(p.keep_daily, 7);
    let text = serde_json::to_string(&Policy::default()).unwrap();
    assert!(!text.contains("keep_within"));
}

// --- the property test against a plain oracle ---------------------------

/// What the rules say, computed the plain way: group the live backups by
/// period, take the newest periods, the newest backup of each.
fn oracle(candidates: &[Candidate], policy: &Policy) -> BTreeSet<usize> {
    if policy.keeps_all() {
        return (0..candidates.len()).collect();
    }
    let zone = policy.zone().unwrap();
    let newer = |a: usize, b: usize| {
        (candidates[a].time, a)
            .partial_cmp(&(candidates[b].time, b))
            .unwrap()
            .is_gt()
    };
    let live: Vec<usize> = (0..candidates.len())
        .filter(|&i| !candidates[i].failed)
        .collect();
    let mut keep: BTreeSet<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].protected)
        .collect();
    let Some(newest) = live
        .iter()
        .copied()
        .reduce(|a, b| if newer(a, b) { a } else { b })
    else {
        return keep;
    };
    keep.insert(newest);
    let mut by_age = live.clone();
    by_age.sort_by(|&a, &b| {
        if newer(a, b) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        }
    });
    keep.extend(by_age.iter().take(policy.keep_last as usize));
    if let Some(span) = policy.within().unwrap() {
        let newest_at = jiff::Timestamp::from_second(candidates[newest].time as i64).unwrap();
        let cutoff = newest_at.to_zoned(zone.clone()).checked_sub(span).unwrap();
        let cutoff = cutoff.timestamp().as_second();
        keep.extend(
            live.iter()
                .filter(|&&i| candidates[i].time as i64 >= cutoff),
        );
    }
    let rules = [
        (Reason::Hourly, policy.keep_hourly),
        (Reason::Daily, policy.keep_daily),
        (Reason::Weekly, policy.keep_weekly),
        (Reason::Monthly, policy.keep_monthly),
        (Reason::Yearly, policy.keep_yearly),
    ];
    for (rule, count) in rules {
        let mut best: BTreeMap<i64, usize> = BTreeMap::new();
        for &i in &live {
            let slot = best
                .entry(period(rule, candidates[i].time, 0, &zone))
                .or_insert(i);
            if newer(i, *slot) {
                *slot = i;
            }
        }
        keep.extend(best.values().rev().take(count as usize));
    }
    keep
}

fn history() -> impl Strategy<Value = Vec<Candidate>> {
    // Gaps of every scale, from none (equal times) to ~40 days.
    let scale = proptest::sample::select(vec![1u64, 600, 6 * 3600, 3 * 86_400, 40 * 86_400]);
    let one = (0u64..u64::MAX, scale, any::<bool>(), 0u8..10);
    proptest::collection::vec(one, 0..60).prop_map(|steps| {
        let mut t = START;
        steps
            .into_iter()
            .map(|(raw, scale, protected, roll)| {
                t += (raw % (scale + 1)) as f64;
                Candidate {
                    id: Uuid::new_v4(),
                    time: t,
                    protected: protected && roll < 2,
                    failed: roll == 9,
                }
            })
            .collect()
    })
}

fn any_policy() -> impl Strategy<Value = Policy> {
    let counts = proptest::array::uniform6(prop_oneof![3 => Just(0u32), 2 => 1u32..6]);
    let within = prop_oneof![
        4 => Just(None),
        1 => proptest::sample::select(vec!["1h", "36h", "7d", "2w", "1mo", "1y"]).prop_map(|s| Some(s.to_string())),
    ];
    let zone = proptest::sample::select(vec![
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ]);
    (counts, within, zone).prop_map(|(c, keep_within, zone)| Policy {
        keep_last: c[0],
        keep_hourly: c[1],
        keep_daily: c[2],
        keep_weekly: c[3],
        keep_monthly: c[4],
        keep_yearly: c[5],
        keep_within,
        time_zone: Some(zone.to_string()),
        max_chain_length: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn plan_matches_the_oracle_and_is_stable(backups in history(), policy in any_policy()) {
        let decisions = plan(&backups, &policy).unwrap();
        let keep = kept(&backups, &policy);
        prop_assert_eq!(&keep, &oracle(&backups, &policy));
        // Protected and the newest live backup are always kept.
        for (i, c) in backups.iter().enumerate() {
            if c.protected {
                prop_assert!(keep.contains(&i));
            }
        }
        if let Some(newest) = decisions.iter().position(|d| d.reasons.contains(&Reason::Newest)) {
            prop_assert!(keep.contains(&newest));
            prop_assert!(backups.iter().all(|c| c.failed || c.time <= backups[newest].time));
        } else {
            prop_assert!(backups.iter().all(|c| c.failed));
        }
        // Removing what it removes and planning again removes nothing more.
        let rest: Vec<Candidate> = keep.iter().map(|&i| backups[i].clone()).collect();
        prop_assert_eq!(kept(&rest, &policy).len(), rest.len());
    }
}
