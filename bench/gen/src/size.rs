//! Human byte sizes on the command line: `4G`, `512M`, `64K`, `4096`.
//!
//! Suffixes are binary (K = 1024) because image sizes and alignments are.

/// Parses `N[K|M|G|T]` (case-insensitive, optional trailing `iB`/`B`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let unit_part = lower.trim_end_matches("ib").trim_end_matches('b');
    let split = unit_part
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(unit_part.len());
    let (digits, unit) = unit_part.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{trimmed:?} is not a size (examples: 4G, 512M, 4096)"))?;
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("{trimmed:?}: unknown size unit {unit:?}")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{trimmed:?} does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn parses_plain_and_suffixed_sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
