//! Billing periods: a calendar month in the tenant's time zone (`YYYY-MM`), or explicit
//! bounds. A period is half-open, `[start, end)`, with both bounds stored as UTC timestamps.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::api::parse_time;
use crate::error::{ApiError, ApiResult};
use crate::store;

/// Longest explicit period accepted.
pub const MAX_PERIOD_DAYS: i64 = 400;

/// A resolved billing period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `YYYY-MM` when the period is a calendar month, None for explicit bounds.
    pub label: Option<String>,
    /// Inclusive start, as stored.
    pub start: String,
    /// Exclusive end, as stored.
    pub end: String,
}

/// The tenant's time zone; an unreadable stored zone falls back to UTC (it was validated
/// when the tenant was written, so this does not happen in practice).
pub fn tenant_tz(timezone: &str) -> Tz {
    timezone.parse::<Tz>().unwrap_or(Tz::UTC)
}

/// Parses `YYYY-MM` into (year, month); 422 naming `field` otherwise.
pub fn parse_month(field: &str, text: &str) -> ApiResult<(i32, u32)> {
    let bad = || ApiError::invalid(field, "must be a month written YYYY-MM, e.g. 2026-03");
    let (y, m) = text.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u32 = m.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) || !(2000..=9998).contains(&year) {
        return Err(bad());
    }
    Ok((year, month))
}

/// The calendar month `label` (`YYYY-MM`) in `tz`.
pub fn month(field: &str, label: &str, tz: Tz) -> ApiResult<Period> {
    let (year, month) = parse_month(field, label)?;
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    Ok(Period {
        label: Some(format!("{year:04}-{month:02}")),
        start: store::timestamp(local_midnight(tz, year, month)?),
        end: store::timestamp(local_midnight(tz, next_year, next_month)?),
    })
}

/// The calendar month containing `at` in `tz`.
pub fn month_of(at: DateTime<Utc>, tz: Tz) -> ApiResult<Period> {
    let local = at.with_timezone(&tz);
    month(
        "period",
        &format!("{:04}-{:02}", local.year(), local.month()),
        tz,
    )
}

/// Explicit bounds: RFC 3339 times, `start < end`, at most [`MAX_PERIOD_DAYS`] apart.
pub fn explicit(start: &str, end: &str) -> ApiResult<Period> {
    let start = parse_time("period_start", start)?;
    let end = parse_time("period_end", end)?;
    let (s, e) = (parse_stored(&start)?, parse_stored(&end)?);
    if e <= s {
        return Err(ApiError::invalid(
            "period_end",
            "must be after period_start",
        ));
    }
    if (e - s).num_days() > MAX_PERIOD_DAYS {
        return Err(ApiError::invalid(
            "period_end",
            format!("a period spans at most {MAX_PERIOD_DAYS} days"),
        ));
    }
    Ok(Period {
        label: None,
        start,
        end,
    })
}

/// A stored timestamp back as a time.
pub fn parse_stored(text: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::internal(format!("stored time {text:?} unreadable: {e}")))
}

/// Midnight starting the 1st of the month in `tz`; where midnight does not exist (a DST jump
/// at midnight) the first instant of the day that does.
fn local_midnight(tz: Tz, year: i32, month: u32) -> ApiResult<DateTime<Utc>> {
    let day = NaiveDate::from_ymd_opt(year, month, 1)
        .ok_or_else(|| ApiError::invalid("period", "no such month"))?;
    (0..4)
        .filter_map(|hour| day.and_hms_opt(hour, 0, 0))
        .find_map(|naive| tz.from_local_datetime(&naive).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| ApiError::invalid("period", "the month has no start in this time zone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_tenant_time_zone() {
        let p = month("period", "2026-03", Tz::Asia__Shanghai).expect("month");
        assert_eq!(p.start, "2026-02-28T16:00:00.000000Z");
        assert_eq!(p.end, "2026-03-31T16:00:00.000000Z");
        let p = month("period", "2026-12", Tz::UTC).expect("december");
        assert_eq!(p.end, "2027-01-01T00:00:00.000000Z");
        for bad in [
            "2026-3", "2026-13", "26-03", "2026/03", "abcd-ef", "2026-00", "",
        ] {
            assert!(month("period", bad, Tz::UTC).is_err(), "{bad}");
        }
    }

    #[test]
    fn explicit_bounds_are_checked() {
        assert!(explicit("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z").is_ok());
        assert!(explicit("2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z").is_err());
        assert!(explicit("2026-03-01T00:00:00Z", "2028-03-01T00:00:00Z").is_err());
        assert!(explicit("yesterday", "2026-03-01T00:00:00Z").is_err());
    }
}
