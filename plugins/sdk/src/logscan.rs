//! Reading a gateway log for lines written since a given moment (pure).
//!
//! Used to tell a gateway that is still starting from one that already
//! served and then wedged (NemoClaw's wedge diagnostics grep the same
//! lines), without keeping state between probes.

/// Unix seconds of a leading ISO-8601 timestamp (`2026-09-20T10:00:00Z`,
/// `…T10:00:00.123Z`, `…T10:00:00+02:00`, `2026-09-20 10:00:00,123`; no zone
/// = UTC), optionally after a `[`. `None` when the line does not start with
/// one.
pub fn leading_timestamp(line: &str) -> Option<i64> {
    let s = line.trim_start().trim_start_matches('[').as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') || !matches!(s.get(10), Some(b'T' | b' '))
    {
        return None;
    }
    let (h, mi, se) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if s.get(13) != Some(&b':')
        || s.get(16) != Some(&b':')
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || se > 60
    {
        return None;
    }
    let mut i = 19;
    if matches!(s.get(i), Some(b'.' | b',')) {
        i += 1;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match s.get(i) {
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            let om = if s.get(i + 3) == Some(&b':') {
                num(i + 4, 2)?
            } else {
                num(i + 3, 2).unwrap_or(0)
            };
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => 0,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// Howard Hinnant's days-from-civil (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The last line containing one of `markers` whose leading timestamp is at
/// or after `since` (Unix seconds). Lines without a timestamp never count:
/// they cannot be tied to the current process.
pub fn last_marker_since<'t>(log: &'t str, markers: &[&str], since: i64) -> Option<&'t str> {
    log.lines()
        .rev()
        .filter(|l| markers.iter().any(|m| l.contains(m)))
        .find(|l| leading_timestamp(l).is_some_and(|t| t >= since))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_common_formats_parse() {
        assert_eq!(leading_timestamp("1970-01-01T00:00:00Z x"), Some(0));
        assert_eq!(
            leading_timestamp("2026-09-20T10:00:00.123Z [gateway] x"),
            Some(1_789_898_400)
        );
        assert_eq!(
            leading_timestamp("[2026-09-20T12:00:00+02:00] x"),
            Some(1_789_898_400)
        );
        assert_eq!(
            leading_timestamp("2026-09-20 10:00:00,123 INFO x"),
            Some(1_789_898_400)
        );
        assert_eq!(leading_timestamp("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(leading_timestamp("gateway startup failed"), None);
        assert_eq!(leading_timestamp("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn wedge_marker_after_the_process_start_is_found() {
        let log = "2026-09-20T09:00:00Z [gateway] gateway startup failed: old run. Process will stay alive\n\
                   2026-09-20T10:00:00Z [gateway] starting fixture gateway (pid=7)\n\
                   2026-09-20T10:00:05.500Z [gateway] gateway startup failed: listener closed. Process will stay alive\n";
        let start = leading_timestamp("2026-09-20T10:00:00Z").unwrap();
        let hit = last_marker_since(log, &["Process will stay alive"], start).unwrap();
        assert!(hit.contains("listener closed"));
        // A marker from an earlier run does not count for a newer process.
        assert_eq!(
            last_marker_since(log, &["Process will stay alive"], start + 10),
            None
        );
        // Untimestamped lines never count.
        assert_eq!(
            last_marker_since("Process will stay alive\n", &["Process will stay alive"], 0),
            None
        );
    }
}
