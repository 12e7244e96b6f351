//! Durations as operators type them in config files and on the command line: `500ms`, `30s`,
//! `5m`, `24h`, `7d`, or combinations such as `1h30m`. Pure: no clock.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a duration (use a number with a unit: 500ms, 30s, 5m, 24h, 7d)")]
pub struct DurationError {
    pub input: String,
}

/// Parses `1h30m`-style durations. A bare `0` is accepted as zero; other bare numbers are refused,
/// because a missing unit is the commonest way to set a timeout a thousand times too long.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let error = || DurationError { input: input.to_owned() };
    let text = input.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(error());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let n_digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
        if n_digits == 0 {
            return Err(error());
        }
        let value: u64 = rest[..n_digits].parse().map_err(|_| error())?;
        rest = &rest[n_digits..];
        let n_unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..n_unit];
        rest = &rest[n_unit..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.checked_mul(60).ok_or_else(error)?),
            "h" => Duration::from_secs(value.checked_mul(3600).ok_or_else(error)?),
            "d" => Duration::from_secs(value.checked_mul(86_400).ok_or_else(error)?),
            _ => return Err(error()),
        };
        total = total.checked_add(part).ok_or_else(error)?;
    }
    Ok(total)
}

/// Formats a duration the way `parse` reads it, choosing the largest exact units (`90s` prints `1m30s`).
pub fn format(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<Duration>) {
        assert_eq!(parse(input).ok(), expected, "input {input:?}");
    }

    #[test]
    fn parses_units_and_combinations() {
        check("500ms", Some(Duration::from_millis(500)));
        check("30s", Some(Duration::from_secs(30)));
        check(" 5m ", Some(Duration::from_secs(300)));
        check("24h", Some(Duration::from_secs(86_400)));
        check("7d", Some(Duration::from_secs(604_800)));
        check("1h30m", Some(Duration::from_secs(5_400)));
        check("0", Some(Duration::ZERO));
    }

    #[test]
    fn refuses_missing_or_unknown_units() {
        for bad in ["", "10", "5 m", "m", "5x", "-5s", "1.5h", "99999999999999999999d"] {
            check(bad, None);
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["1m30s", "1d", "500ms", "7d", "0", "1d2h3m4s5ms"] {
            assert_eq!(format(parse(text).expect("valid")), text);
        }
        assert_eq!(format(parse("24h").expect("valid")), "1d");
        assert_eq!(format(parse("90s").expect("valid")), "1m30s");
    }
}
