//! Printing results: JSON on request, short human text otherwise.

use anyhow::Result;
use serde::Serialize;

/// Prints `value` as JSON when `json`, else the human text `human()`.
pub fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{text}");
        }
    }
    Ok(())
}

/// Formats a byte count for people.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
