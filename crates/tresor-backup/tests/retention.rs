//! Retention decisions against a table of expected outcomes, with fixed clocks. The backup
//! times are restic's `TestApplyPolicy` list (internal/data/snapshot_policy_test.go); the
//! expected sets for Daily 2 + Weekly 2 + Monthly 6 and for Yearly 10 are restic's golden files
//! (policy_keep_snapshots_15 and _16), the others are worked out by hand from the documented
//! rules.
#![allow(clippy::unwrap_used)]

use tresor_backup::retention::{RetentionPolicy, Span, UNLIMITED, apply};

const TIMES: &[&str] = &[
    "2014-09-01 10:20:30",
    "2014-09-02 10:20:30",
    "2014-09-05 10:20:30",
    "2014-09-06 10:20:30",
    "2014-09-08 10:20:30",
    "2014-09-09 10:20:30",
    "2014-09-10 10:20:30",
    "2014-09-11 10:20:30",
    "2014-09-20 10:20:30",
    "2014-09-22 10:20:30",
    "2014-08-08 10:20:30",
    "2014-08-10 10:20:30",
    "2014-08-12 10:20:30",
    "2014-08-13 10:20:30",
    "2014-08-13 10:20:30.1",
    "2014-08-15 10:20:30",
    "2014-08-18 10:20:30",
    "2014-08-20 10:20:30",
    "2014-08-21 10:20:30",
    "2014-08-22 10:20:30",
    "2014-10-01 10:20:30",
    "2014-10-02 10:20:30",
    "2014-10-05 10:20:30",
    "2014-10-06 10:20:30",
    "2014-10-08 10:20:30",
    "2014-10-09 10:20:30",
    "2014-10-10 10:20:30",
    "2014-10-11 10:20:30",
    "2014-10-20 10:20:30",
    "2014-10-22 10:20:30",
    "2014-11-08 10:20:30",
    "2014-11-10 10:20:30",
    "2014-11-12 10:20:30",
    "2014-11-13 10:20:30",
    "2014-11-13 10:20:30.1",
    "2014-11-15 10:20:30",
    "2014-11-18 10:20:30",
    "2014-11-20 10:20:30",
    "2014-11-21 10:20:30",
    "2014-11-22 10:20:30",
    "2015-09-01 10:20:30",
    "2015-09-02 10:20:30",
    "2015-09-05 10:20:30",
    "2015-09-06 10:20:30",
    "2015-09-08 10:20:30",
    "2015-09-09 10:20:30",
    "2015-09-10 10:20:30",
    "2015-09-11 10:20:30",
    "2015-09-20 10:20:30",
    "2015-09-22 10:20:30",
    "2015-08-08 10:20:30",
    "2015-08-10 10:20:30",
    "2015-08-12 10:20:30",
    "2015-08-13 10:20:30",
    "2015-08-13 10:20:30.1",
    "2015-08-15 10:20:30",
    "2015-08-18 10:20:30",
    "2015-08-20 10:20:30",
    "2015-08-21 10:20:30",
    "2015-08-22 10:20:30",
    "2015-10-01 10:20:30",
    "2015-10-02 10:20:30",
    "2015-10-05 10:20:30",
    "2015-10-06 10:20:30",
    "2015-10-08 10:20:30",
    "2015-10-09 10:20:30",
    "2015-10-10 10:20:30",
    "2015-10-11 10:20:30",
    "2015-10-20 10:20:30",
    "2015-10-22 10:20:30",
    "2015-10-22 10:20:30",
    "2015-10-22 10:20:30",
    "2015-10-22 10:20:30",
    "2015-10-22 10:20:30",
    "2015-11-08 10:20:30",
    "2015-11-10 10:20:30",
    "2015-11-12 10:20:30",
    "2015-11-13 10:20:30",
    "2015-11-13 10:20:30.1",
    "2015-11-15 10:20:30",
    "2015-11-18 10:20:30",
    "2015-11-20 10:20:30",
    "2015-11-21 10:20:30",
    "2015-11-22 10:20:30",
    "2016-01-01 01:02:03",
    "2016-01-01 01:03:03",
    "2016-01-01 07:08:03",
    "2016-01-03 07:02:03",
    "2016-01-04 10:23:03",
    "2016-01-04 11:23:03",
    "2016-01-04 12:23:03",
    "2016-01-04 12:24:03",
    "2016-01-04 12:28:03",
    "2016-01-04 12:30:03",
    "2016-01-04 16:23:03",
    "2016-01-05 09:02:03",
    "2016-01-06 08:02:03",
    "2016-01-07 10:02:03",
    "2016-01-08 20:02:03",
    "2016-01-09 21:02:03",
    "2016-01-12 21:02:03",
    "2016-01-12 21:08:03",
    "2016-01-18 12:02:03",
];

/// Milliseconds since the epoch of "YYYY-MM-DD HH:MM:SS[.f]" (UTC), an independent oracle.
fn ms(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (hh, mm, ss) = (n(11, 13), n(14, 16), n(17, 19));
    let frac = if s.len() > 20 { n(20, 21) * 100 } else { 0 };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + frac
}

fn backups() -> Vec<(String, i64)> {
    TIMES
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("b{i:03}"), ms(t)))
        .collect()
}

/// "Now": one day after the newest backup.
fn now() -> i64 {
    ms("2016-01-19 12:00:00")
}

fn kept(policy: RetentionPolicy) -> Vec<i64> {
    apply(&policy, &backups(), now())
        .unwrap()
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| d.created_ms)
        .collect()
}

fn times(list: &[&str]) -> Vec<i64> {
    list.iter().map(|t| ms(t)).collect()
}

fn policy(f: impl FnOnce(&mut RetentionPolicy)) -> RetentionPolicy {
    let mut p = RetentionPolicy::default();
    f(&mut p);
    p
}

#[test]
fn table_of_expected_outcomes() {
    let cases: Vec<(&str, RetentionPolicy, Vec<&str>)> = vec![
        (
            "last 3",
            policy(|p| p.last = 3),
            vec![
                "2016-01-18 12:02:03",
                "2016-01-12 21:08:03",
                "2016-01-12 21:02:03",
            ],
        ),
        (
            "daily 3",
            policy(|p| p.daily = 3),
            vec![
                "2016-01-18 12:02:03",
                "2016-01-12 21:08:03",
                "2016-01-09 21:02:03",
            ],
        ),
        (
            "weekly 4 (ISO weeks: 2016-01-03 is in 2015-W53)",
            policy(|p| p.weekly = 4),
            vec![
                "2016-01-18 12:02:03",
                "2016-01-12 21:08:03",
                "2016-01-09 21:02:03",
                "2016-01-03 07:02:03",
            ],
        ),
        (
            "last 5 + daily 5: the union",
            policy(|p| {
                p.last = 5;
                p.daily = 5;
            }),
            vec![
                "2016-01-18 12:02:03",
                "2016-01-12 21:08:03",
                "2016-01-12 21:02:03",
                "2016-01-09 21:02:03",
                "2016-01-08 20:02:03",
                "2016-01-07 10:02:03",
            ],
        ),
        (
            "restic golden 15: daily 2, weekly 2, monthly 6",
            policy(|p| {
                p.daily = 2;
                p.weekly = 2;
                p.monthly = 6;
            }),
            vec![
                "2016-01-18 12:02:03",
                "2016-01-12 21:08:03",
                "2015-11-22 10:20:30",
                "2015-10-22 10:20:30",
                "2015-09-22 10:20:30",
                "2015-08-22 10:20:30",
                "2014-11-22 10:20:30",
            ],
        ),
        (
            "restic golden 16: yearly 10 keeps the oldest too (counts left)",
            policy(|p| p.yearly = 10),
            vec![
                "2016-01-18 12:02:03",
                "2015-11-22 10:20:30",
                "2014-11-22 10:20:30",
                "2014-08-08 10:20:30",
            ],
        ),
        (
            "within 1d of the newest",
            policy(|p| p.within = Some(Span::parse("1d").unwrap())),
            vec!["2016-01-18 12:02:03"],
        ),
        (
            "within 7d of the newest",
            policy(|p| p.within = Some(Span::parse("7d").unwrap())),
            vec![
                "2016-01-18 12:02:03",
                "2016-01-12 21:08:03",
                "2016-01-12 21:02:03",
            ],
        ),
    ];
    for (name, p, expected) in cases {
        assert_eq!(kept(p), times(&expected), "{name}");
    }
}

#[test]
fn within_uses_calendar_months_and_the_newest_backup() {
    // 2016-01-18 12:02:03 − 1 month − 14 days = 2015-12-04 12:02:03: every 2016 backup.
    let k = kept(policy(|p| p.within = Some(Span::parse("1m14d").unwrap())));
    assert_eq!(k.len(), 19);
    assert!(k.iter().all(|t| *t >= ms("2016-01-01 00:00:00")));
    // The reference is the newest backup, not "now": a year later nothing changes.
    let p = policy(|p| p.within = Some(Span::parse("1d").unwrap()));
    let later = apply(&p, &backups(), ms("2017-01-01 00:00:00")).unwrap();
    assert_eq!(later.iter().filter(|d| d.keep).count(), 1);
    // A backup in the future of "now" is not the reference.
    let mut list = backups();
    list.push(("future".into(), ms("2030-01-01 00:00:00")));
    let d = apply(&p, &list, now()).unwrap();
    assert_eq!(d[0].id, "future");
    assert!(d[0].keep); // newer than the cutoff
    assert!(d[1].keep); // 2016-01-18, the reference
    assert_eq!(d.iter().filter(|d| d.keep).count(), 2);
}

#[test]
fn unlimited_hourly_keeps_the_newest_of_every_hour() {
    let k = kept(policy(|p| p.hourly = UNLIMITED));
    // Same-hour groups in the list: 2016-01-04 12:xx (4), 2016-01-01 01:0x (2), 2016-01-12
    // 21:0x (2), 2015-10-22 10:20:30 (5), and four pairs "… 10:20:30" / "… 10:20:30.1".
    let dropped = 3 + 1 + 1 + 4 + 4;
    assert_eq!(k.len(), TIMES.len() - dropped);
    let last_all = kept(policy(|p| p.last = UNLIMITED));
    assert_eq!(last_all.len(), TIMES.len());
}

#[test]
fn decisions_are_newest_first_with_reasons() {
    let d = apply(&policy(|p| p.daily = 2), &backups(), now()).unwrap();
    assert_eq!(d.len(), TIMES.len());
    assert!(d.windows(2).all(|w| w[0].created_ms >= w[1].created_ms));
    assert_eq!(d[0].reasons, vec!["daily snapshot".to_owned()]);
    assert!(d.iter().filter(|x| !x.keep).all(|x| x.reasons.is_empty()));
    // Ties keep their input order.
    let ties: Vec<&str> = d
        .iter()
        .filter(|x| x.created_ms == ms("2015-10-22 10:20:30"))
        .map(|x| x.id.as_str())
        .collect();
    assert_eq!(ties, vec!["b069", "b070", "b071", "b072", "b073"]);
    // An empty policy is refused rather than forgetting everything.
    assert!(apply(&RetentionPolicy::default(), &backups(), now()).is_err());
}
