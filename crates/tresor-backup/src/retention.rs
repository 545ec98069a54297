//! Retention policies with restic's `forget` semantics, as a pure function over
//! `(backup id, creation time)` lists.
//!
//! Backups are sorted newest first. A backup is kept if **any** rule keeps it:
//!
//! - `last N`: the `N` newest backups;
//! - `hourly/daily/weekly/monthly/yearly N`: walking from the newest, the newest backup of each
//!   hour / day / ISO week / month / year, for the `N` most recent periods that have backups;
//!   if a rule still has periods left when the oldest backup is reached, the oldest backup is
//!   kept too (restic ≥ 0.17: it maximizes the history kept);
//! - `within SPAN`: every backup created after (newest backup's time − SPAN), where the newest
//!   backup is the newest one not in the future of `now`; SPAN is calendar arithmetic
//!   `NyNmNdNh` (years, months, days, hours), months and years subtracted on the calendar with
//!   day overflow normalized as Go's `time.AddDate` does.
//!
//! Periods are in UTC. A count of [`UNLIMITED`] keeps one backup of every period.

use crate::BackupError;

/// A count that means "every period" (restic's `unlimited` / `-1`).
pub const UNLIMITED: u32 = u32::MAX;

/// A calendar span for `within` rules: years, months, days and hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl Span {
    /// Parses restic's duration syntax: one or more `<number><unit>` with units `y`, `m`
    /// (months), `d`, `h`, e.g. `1y5m7d2h`, `30d`, `12h`.
    ///
    /// # Errors
    /// [`BackupError::InvalidPolicy`] for anything else.
    pub fn parse(s: &str) -> Result<Span, BackupError> {
        let bad =
            || BackupError::InvalidPolicy(format!("invalid duration {s:?} (use e.g. 1y5m7d2h)"));
        let mut span = Span::default();
        let mut number = String::new();
        let mut any = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let n: u32 = number.parse().map_err(|_| bad())?;
            number.clear();
            let field = match c {
                'y' => &mut span.years,
                'm' => &mut span.months,
                'd' => &mut span.days,
                'h' => &mut span.hours,
                _ => return Err(bad()),
            };
            *field = field.checked_add(n).ok_or_else(bad)?;
            any = true;
        }
        if !number.is_empty() || !any {
            return Err(bad());
        }
        Ok(span)
    }

    fn is_zero(&self) -> bool {
        *self == Span::default()
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut any = false;
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
                any = true;
            }
        }
        if !any {
            f.write_str("0h")?;
        }
        Ok(())
    }
}

/// Which backups to keep. All counts default to 0 (rule off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Keep the `last` newest backups.
    pub last: u32,
    /// Keep the newest backup of each of the last `hourly` hours that have backups.
    pub hourly: u32,
    /// … of each of the last `daily` days.
    pub daily: u32,
    /// … of each of the last `weekly` ISO weeks.
    pub weekly: u32,
    /// … of each of the last `monthly` months.
    pub monthly: u32,
    /// … of each of the last `yearly` years.
    pub yearly: u32,
    /// Keep every backup within this span of the newest one.
    pub within: Option<Span>,
}

impl RetentionPolicy {
    /// A policy that keeps the `n` newest backups.
    pub fn keep_last(n: u32) -> Self {
        Self {
            last: n,
            ..Self::default()
        }
    }

    /// Whether no rule is set (such a policy is refused: it would forget everything).
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none_or(|w| w.is_zero())
    }
}

/// The decision for one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// The backup id as given.
    pub id: String,
    /// Its creation time (ms since the Unix epoch).
    pub created_ms: i64,
    /// Whether any rule keeps it.
    pub keep: bool,
    /// The rules that keep it (e.g. `daily snapshot`, `within 7d`); empty when forgotten.
    pub reasons: Vec<String>,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Days since 1970-01-01 of a proleptic Gregorian date; `day` may overflow the month (it is
/// added linearly), `month` is 1-based and may be out of 1..=12 (normalized into the year).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y0 = year + (month - 1).div_euclid(12);
    let m = (month - 1).rem_euclid(12) + 1;
    let y = if m <= 2 { y0 - 1 } else { y0 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 + (day - 1)
}

/// `(year, month, day)` of a day number.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// ISO 8601 `(year, week)` of a day number.
fn iso_week(days: i64) -> (i64, i64) {
    let weekday = (days + 3).rem_euclid(7); // 0 = Monday (1970-01-01 was a Thursday)
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, week)
}

#[derive(Clone, Copy)]
enum Period {
    Each,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

fn bucket(period: Period, ms: i64, index: usize) -> i64 {
    let days = ms.div_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    match period {
        Period::Each => index as i64,
        Period::Hour => ((y * 100 + m) * 100 + d) * 100 + ms.rem_euclid(DAY_MS) / HOUR_MS,
        Period::Day => (y * 100 + m) * 100 + d,
        Period::Week => {
            let (wy, w) = iso_week(days);
            wy * 100 + w
        }
        Period::Month => y * 100 + m,
        Period::Year => y,
    }
}

/// `ms` minus `span`, on the calendar.
fn subtract(ms: i64, span: Span) -> i64 {
    let days = ms.div_euclid(DAY_MS);
    let time = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let shifted = days_from_civil(
        y - i64::from(span.years),
        m - i64::from(span.months),
        d - i64::from(span.days),
    );
    shifted * DAY_MS + time - i64::from(span.hours) * HOUR_MS
}

/// Decides which of `backups` (`(id, created_ms)`) `policy` keeps, with `now_ms` as the
/// current time (a backup in the future of `now_ms` is never the reference of `within`).
/// Returns one decision per backup, newest first (ties keep their input order).
///
/// # Errors
/// [`BackupError::InvalidPolicy`] if `policy` is empty (restic refuses too: it would forget
/// every backup).
pub fn apply(
    policy: &RetentionPolicy,
    backups: &[(String, i64)],
    now_ms: i64,
) -> Result<Vec<Decision>, BackupError> {
    if policy.is_empty() {
        return Err(BackupError::InvalidPolicy(
            "no rule given (use --keep-last, --keep-daily, … or --keep-within)".into(),
        ));
    }
    let mut sorted: Vec<&(String, i64)> = backups.iter().collect();
    sorted.sort_by_key(|b| std::cmp::Reverse(b.1));
    let latest = sorted
        .iter()
        .map(|b| b.1)
        .filter(|t| *t < now_ms)
        .max()
        .unwrap_or(i64::MIN);
    let mut rules = [
        (policy.last, Period::Each, "last snapshot", None::<i64>),
        (policy.hourly, Period::Hour, "hourly snapshot", None),
        (policy.daily, Period::Day, "daily snapshot", None),
        (policy.weekly, Period::Week, "weekly snapshot", None),
        (policy.monthly, Period::Month, "monthly snapshot", None),
        (policy.yearly, Period::Year, "yearly snapshot", None),
    ];
    let within_cutoff = policy
        .within
        .filter(|w| !w.is_zero())
        .map(|w| (w, subtract(latest, w)));
    let oldest = sorted.len().saturating_sub(1);
    let mut out = Vec::with_capacity(sorted.len());
    for (index, (id, created)) in sorted.into_iter().enumerate() {
        let mut reasons = Vec::new();
        if let Some((span, cutoff)) = within_cutoff
            && *created > cutoff
        {
            reasons.push(format!("within {span}"));
        }
        for (count, period, reason, last) in &mut rules {
            if *count == 0 {
                continue;
            }
            let value = bucket(*period, *created, index);
            if Some(value) != *last || index == oldest {
                if Some(value) == *last {
                    reasons.push(format!("oldest {reason}"));
                } else {
                    reasons.push((*reason).to_owned());
                }
                *last = Some(value);
                if *count != UNLIMITED {
                    *count -= 1;
                }
            }
        }
        out.push(Decision {
            id: id.clone(),
            created_ms: *created,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn calendar_helpers() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for d in [-800_000, -1, 0, 59, 10_000, 20_000, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        // ISO weeks: 2014-12-29 is in week 1 of 2015; 2016-01-03 in week 53 of 2015.
        assert_eq!(iso_week(days_from_civil(2014, 12, 29)), (2015, 1));
        assert_eq!(iso_week(days_from_civil(2016, 1, 3)), (2015, 53));
        assert_eq!(iso_week(days_from_civil(2016, 1, 4)), (2016, 1));
        // Go's AddDate normalization: 2015-03-31 minus one month is 2015-03-03.
        let t = days_from_civil(2015, 3, 31) * DAY_MS;
        let back = subtract(
            t,
            Span {
                months: 1,
                ..Span::default()
            },
        );
        assert_eq!(civil_from_days(back / DAY_MS), (2015, 3, 3));
    }

    #[test]
    fn spans_parse() {
        assert_eq!(
            Span::parse("1y5m7d2h").unwrap(),
            Span {
                years: 1,
                months: 5,
                days: 7,
                hours: 2
            }
        );
        assert_eq!(Span::parse("30d").unwrap().days, 30);
        for bad in ["", "5", "d", "1w", "1d2", "-1d"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Span::parse("2m2h").unwrap().to_string(), "2m2h");
    }

    #[test]
    fn empty_policy_is_refused() {
        assert!(apply(&RetentionPolicy::default(), &[], 0).is_err());
    }
}
