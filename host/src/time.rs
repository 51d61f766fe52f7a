//! RFC 3339 timestamps in UTC without a date crate (audit log, reports).

/// Now, with milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, Some(now.subsec_millis()))
}

/// Seconds since the epoch (plus optional milliseconds) as RFC 3339 UTC.
pub fn rfc3339(secs: i64, millis: Option<u32>) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fraction = millis.map(|ms| format!(".{ms:03}")).unwrap_or_default();
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0, None), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(0, Some(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, Some(5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_767_225_599, None), "2025-12-31T23:59:59Z");
        assert_eq!(
            rfc3339(1_795_436_123, Some(999)),
            "2026-11-23T12:15:23.999Z"
        );
    }
}
