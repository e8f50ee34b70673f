//! Layout options given by users (`--rbd-features`, `--rbd-order`,
//! `--rbd-stripe-unit`, `--rbd-stripe-count`): parsed and checked against
//! librbd's own rules before anything is created, so a bad value is one
//! clear message instead of librbd's bare EINVAL.

use blockback_core::image::{ImageError, Result};

use crate::pool::features::*;
use crate::pool::CreateOptions;

/// Feature names as the rbd CLI spells them (`--image-feature`), for the
/// features that can be chosen at creation.
pub const FEATURE_NAMES: [(&str, u64); 6] = [
    ("layering", LAYERING),
    ("striping", STRIPINGV2),
    ("exclusive-lock", EXCLUSIVE_LOCK),
    ("object-map", OBJECT_MAP),
    ("fast-diff", FAST_DIFF),
    ("deep-flatten", DEEP_FLATTEN),
];

/// librbd's range for the object size order (4 KiB to 32 MiB).
const ORDER_RANGE: std::ops::RangeInclusive<u8> = 12..=25;
/// librbd's default object size order (4 MiB objects).
const DEFAULT_ORDER: u8 = 22;
/// librbd refuses smaller stripe units.
const MIN_STRIPE_UNIT: u64 = 512;

fn invalid(what: &str, why: impl Into<String>) -> ImageError {
    ImageError::Invalid {
        what: what.into(),
        why: why.into(),
    }
}

/// Parses a comma-separated list of feature names (`layering,exclusive-lock`)
/// or a number (`61`, `0x3d`) into feature bits, refusing unknown ones and
/// combinations librbd rejects.
pub fn parse_features(text: &str) -> Result<u64> {
    let what = "--rbd-features";
    let text = text.trim();
    let bits = match parse_number(text) {
        Some(n) => {
            let known = FEATURE_NAMES.iter().fold(0, |acc, (_, b)| acc | b);
            if n & !known != 0 {
                return Err(invalid(
                    what,
                    format!("{n} has unknown feature bits {:#x}", n & !known),
                ));
            }
            n
        }
        None => parse_names(text)?,
    };
    check_dependencies(bits)?;
    Ok(bits)
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn parse_names(text: &str) -> Result<u64> {
    let mut bits = 0;
    for name in text.split(',').map(str::trim) {
        let bit = FEATURE_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                let names: Vec<_> = FEATURE_NAMES.iter().map(|(n, _)| *n).collect();
                invalid(
                    "--rbd-features",
                    format!(
                        "unknown feature '{name}' (known: {}, or a number)",
                        names.join(",")
                    ),
                )
            })?;
        bits |= bit;
    }
    Ok(bits)
}

/// librbd's feature dependencies: fast-diff needs object-map, which needs
/// exclusive-lock.
fn check_dependencies(bits: u64) -> Result<()> {
    let needs = [
        (
            OBJECT_MAP,
            EXCLUSIVE_LOCK,
            "object-map needs exclusive-lock",
        ),
        (FAST_DIFF, OBJECT_MAP, "fast-diff needs object-map"),
    ];
    for (feature, required, why) in needs {
        if bits & feature != 0 && bits & required == 0 {
            return Err(invalid("--rbd-features", why));
        }
    }
    Ok(())
}

impl CreateOptions {
    /// The object size new images get, in bytes.
    pub fn object_size(&self) -> u64 {
        1 << self.order.unwrap_or(DEFAULT_ORDER)
    }

    /// Checks the layout as librbd would, naming the offending option.
    pub fn validate(&self) -> Result<()> {
        let order = self.order.unwrap_or(DEFAULT_ORDER);
        if !ORDER_RANGE.contains(&order) {
            return Err(invalid(
                "--rbd-order",
                format!("{order} is outside librbd's range 12..=25 (4 KiB to 32 MiB objects)"),
            ));
        }
        if let Some(f) = self.features {
            check_dependencies(f)?;
        }
        self.validate_striping(1u64 << order)
    }

    fn validate_striping(&self, object_size: u64) -> Result<()> {
        match (self.stripe_unit, self.stripe_count) {
            (None, None) => Ok(()),
            (Some(_), None) | (None, Some(_)) => Err(invalid(
                "--rbd-stripe-unit/--rbd-stripe-count",
                "give both or neither",
            )),
            (_, Some(0)) => Err(invalid("--rbd-stripe-count", "must be at least 1")),
            (Some(unit), Some(_)) => {
                let what = "--rbd-stripe-unit";
                if unit < MIN_STRIPE_UNIT {
                    Err(invalid(
                        what,
                        format!("{unit} is below librbd's minimum 512"),
                    ))
                } else if unit > object_size || !object_size.is_multiple_of(unit) {
                    Err(invalid(
                        what,
                        format!("{unit} must divide the object size {object_size} (2^order)"),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn striped(unit: u64, count: u64) -> CreateOptions {
        CreateOptions {
            stripe_unit: Some(unit),
            stripe_count: Some(count),
            ..CreateOptions::default()
        }
    }

    #[test]
    fn feature_names_and_numbers_parse() {
        assert_eq!(parse_features("layering").unwrap(), LAYERING);
        assert_eq!(
            parse_features("layering, exclusive-lock,object-map,fast-diff").unwrap(),
            LAYERING | EXCLUSIVE_LOCK | OBJECT_MAP | FAST_DIFF
        );
        assert_eq!(parse_features("61").unwrap(), 61);
        assert_eq!(parse_features("0x3").unwrap(), 3);
    }

    #[test]
    fn bad_features_are_refused_with_the_reason() {
        let err = parse_features("layering,journalling")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("journalling") && err.contains("known:"),
            "{err}"
        );
        let err = parse_features("layering,object-map")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs exclusive-lock"), "{err}");
        let err = parse_features("exclusive-lock,fast-diff")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs object-map"), "{err}");
        let err = parse_features("128").unwrap_err().to_string();
        assert!(err.contains("unknown feature bits 0x80"), "{err}");
        assert!(parse_features("").is_err());
    }

    #[test]
    fn striping_follows_librbds_rules() {
        striped(65536, 4).validate().unwrap();
        striped(4 << 20, 1).validate().unwrap();
        assert!(striped(65536, 0).validate().is_err(), "zero count");
        assert!(striped(256, 4).validate().is_err(), "below 512");
        assert!(striped(3 << 16, 4).validate().is_err(), "not a divisor");
        assert!(
            striped(8 << 20, 2).validate().is_err(),
            "above the object size"
        );
        let small_objects = CreateOptions {
            order: Some(16),
            ..striped(1 << 17, 2)
        };
        assert!(small_objects.validate().is_err(), "above 2^16");
        let half = CreateOptions {
            stripe_count: None,
            ..striped(65536, 4)
        };
        assert!(half.validate().is_err(), "unit without count");
    }

    #[test]
    fn order_must_be_in_librbds_range() {
        for (order, ok) in [(11, false), (12, true), (25, true), (26, false)] {
            let o = CreateOptions {
                order: Some(order),
                ..CreateOptions::default()
            };
            assert_eq!(o.validate().is_ok(), ok, "order {order}");
        }
    }
}
