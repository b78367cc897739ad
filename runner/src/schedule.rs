//! When drills fire: a runbook's cron schedule in its time zone, what happens to fire times
//! that were missed, and jitter. Pure: the clock is an argument, so the tests need no sleep.

use std::time::Duration;

use chrono::{DateTime, Utc};
use drillbook_runbooks::{Misfire, Runbook};
use sha2::{Digest, Sha256};

/// A schedule's interval is its longest gap within a year from a fixed reference, or within
/// this many fire times (an hourly weekday schedule's weekend is inside them; a schedule every
/// few seconds is uniform long before).
const INTERVAL_SCAN: usize = 400;
const INTERVAL_DAYS: i64 = 400;

/// A fire time is on time when its drill can start within this of it (plus jitter).
pub const GRACE: Duration = Duration::from_secs(5);

/// Fire times are looked at no further back than this many, after a long downtime.
const MAX_SCAN: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Timetable {
    schedule: cron::Schedule,
    tz: chrono_tz::Tz,
    misfire: Misfire,
    /// This runbook's fixed share of its `jitter` window.
    offset: Duration,
    /// See [`Timetable::interval`].
    interval: Option<Duration>,
    memo: Memo,
}

/// The last answer of [`Timetable::next_after`]: the daemon's loop asks for the same `last`
/// every time it wakes (to decide, to publish the next fire, to sleep until it), and walking a
/// cron schedule in a time zone is the costliest thing it does idle.
#[derive(Debug, Default)]
struct Memo(std::sync::Mutex<Option<Answer>>);

/// A time asked about, and the first fire time after it.
type Answer = (DateTime<Utc>, Option<DateTime<Utc>>);

impl Clone for Memo {
    fn clone(&self) -> Memo {
        Memo::default()
    }
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Start a drill now for this fire time (its `scheduled_for`).
    pub fire: Option<DateTime<Utc>>,
    /// Fire times passed over without a drill (missed, or coalesced by `misfire: once`).
    pub missed: usize,
    /// The latest fire time handled by this decision (fired or passed over); the next
    /// decision looks only after it.
    pub handled: Option<DateTime<Utc>>,
}

impl Timetable {
    /// `None` for a runbook without a schedule (it runs only by hand).
    pub fn for_runbook(rb: &Runbook) -> Option<Timetable> {
        let schedule = rb.schedule.as_ref()?.get().0.clone();
        let jitter = rb.jitter.as_ref().map(|j| j.get().0).unwrap_or_default();
        let mut t = Timetable {
            schedule,
            tz: rb.timezone(),
            misfire: rb.misfire,
            offset: offset(rb.name(), jitter),
            interval: None,
            memo: Memo::default(),
        };
        t.interval = t.longest_gap();
        Some(t)
    }

    /// The first fire time strictly after `t`. The schedule is read on the wall clock of the
    /// runbook's time zone, as cronie and systemd timers do across daylight saving: a fire time
    /// inside a spring-forward gap runs once, at the first instant after the gap; one inside the
    /// fall-back overlap runs once, at its first occurrence.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Ok(memo) = self.memo.0.lock()
            && let Some((asked, answer)) = *memo
            && asked == t
        {
            return answer;
        }
        let answer = self.walk_after(t);
        if let Ok(mut memo) = self.memo.0.lock() {
            *memo = Some((t, answer));
        }
        answer
    }

    fn walk_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        use chrono::{LocalResult, TimeZone};
        // cron walks naive wall-clock times, with UTC standing in for "no zone".
        let wall = Utc.from_utc_datetime(&t.with_timezone(&self.tz).naive_local());
        for naive in self.schedule.after(&wall).take(10_000).map(|w| w.naive_utc()) {
            let instant = match self.tz.from_local_datetime(&naive) {
                LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, b) => [a, b].into_iter().map(|d| d.with_timezone(&Utc)).find(|d| *d > t),
                LocalResult::None => first_after_gap(self.tz, naive),
            };
            if let Some(d) = instant.filter(|d| *d > t) {
                return Some(d);
            }
        }
        None
    }

    /// How long a passing drill proves the asset for: the longest gap between consecutive fire
    /// times (a weekday schedule's weekend, a daily one's 25-hour day when clocks fall back),
    /// computed once from a fixed reference so that it needs no clock. Exported as
    /// `drillbook_schedule_interval_seconds` for alerting.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    fn longest_gap(&self) -> Option<Duration> {
        use chrono::TimeZone;
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).single()?; // a Monday
        let horizon = start + chrono::Duration::days(INTERVAL_DAYS);
        let (mut longest, mut at, mut seen) = (None::<Duration>, self.next_after(start)?, 0);
        while let Some(next) = self.next_after(at) {
            let gap = (next - at).to_std().ok();
            longest = longest.max(gap);
            seen += 1;
            if next > horizon || seen >= INTERVAL_SCAN {
                break;
            }
            at = next;
        }
        longest
    }

    /// When the drill for fire time `fire` starts: the fire time plus this runbook's jitter.
    pub fn start_at(&self, fire: DateTime<Utc>) -> DateTime<Utc> {
        fire + chrono::Duration::from_std(self.offset).unwrap_or_default()
    }

    /// The decision at `now`, for fire times after `last` (the latest one already handled).
    pub fn due(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> Due {
        let mut latest = None;
        let mut count = 0;
        let mut t = last;
        while let Some(f) = self.next_after(t) {
            if self.start_at(f) > now || count >= MAX_SCAN {
                break;
            }
            latest = Some(f);
            count += 1;
            t = f;
        }
        let Some(latest) = latest else {
            return Due { fire: None, missed: 0, handled: None };
        };
        let late = (now - self.start_at(latest)).to_std().unwrap_or_default();
        let on_time = late <= GRACE;
        let fire = match self.misfire {
            _ if on_time => Some(latest),
            Misfire::Once => Some(latest),
            Misfire::Skip => None,
        };
        Due { fire, missed: count - usize::from(fire.is_some()), handled: Some(latest) }
    }
}

/// The first instant after the daylight-saving gap that swallowed the wall-clock time `naive`
/// (gaps start and end on whole minutes in every zone).
fn first_after_gap(tz: chrono_tz::Tz, naive: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::{TimeZone, Timelike};
    let mut probe = naive.with_second(0)?.with_nanosecond(0)?;
    for _ in 0..(26 * 60) {
        probe += chrono::Duration::minutes(1);
        if let Some(d) = tz.from_local_datetime(&probe).earliest() {
            return Some(d.with_timezone(&Utc));
        }
    }
    None
}

/// A fixed point in `[0, jitter)` derived from the runbook's name, so a restart keeps it.
fn offset(name: &str, jitter: Duration) -> Duration {
    let ms = jitter.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    let h = Sha256::digest(name.as_bytes());
    let n = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    Duration::from_millis(n % ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schedule: &str, tz: &str, misfire: &str, jitter: Option<&str>) -> Timetable {
        let text = format!(
            "version: 1\nname: t\nowner: o\nschedule: \"{schedule}\"\ntimezone: {tz}\nmisfire: {misfire}\n{}\
             asset: {{ name: a, kind: files }}\nsource: {{ path: x/ }}\nrestore: {{ adapter: files }}\n",
            jitter.map(|j| format!("jitter: {j}\n")).unwrap_or_default()
        );
        let rb = Runbook::parse("t.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
        Timetable::for_runbook(&rb).expect("scheduled")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn fire_times_follow_the_time_zone_across_daylight_saving() {
        let t = table("30 3 * * *", "Europe/Berlin", "skip", None);
        // 03:30 in Berlin is 01:30 UTC in summer and 02:30 UTC in winter.
        assert_eq!(t.next_after(at("2026-10-24T12:00:00Z")), Some(at("2026-10-25T02:30:00Z")));
        assert_eq!(t.next_after(at("2026-07-01T12:00:00Z")), Some(at("2026-07-02T01:30:00Z")));
    }

    // fault: a fire time inside the spring-forward gap (`30 2 * * *`, Berlin, 29 March 2026) | runs once, at 03:00 CEST | (the daemon's decisions, minute by minute) | exactly one drill that day
    #[test]
    fn a_fire_time_in_the_spring_forward_gap_runs_once_right_after_it() {
        // Berlin, 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        let t = table("30 2 * * *", "Europe/Berlin", "skip", None);
        assert_eq!(t.next_after(at("2026-03-28T12:00:00Z")), Some(at("2026-03-29T01:00:00Z")), "03:00 CEST");
        assert_eq!(t.next_after(at("2026-03-29T01:00:00Z")), Some(at("2026-03-30T00:30:00Z")), "then 02:30 CEST");
        // Every fire time of a schedule inside the gap collapses into one drill at 03:00.
        let every10 = table("*/10 2 * * *", "Europe/Berlin", "skip", None);
        assert_eq!(every10.next_after(at("2026-03-29T00:55:00Z")), Some(at("2026-03-29T01:00:00Z")));
        assert_eq!(every10.next_after(at("2026-03-29T01:00:00Z")), Some(at("2026-03-30T00:00:00Z")));
        // A day's decisions: exactly one drill on the change day.
        let fires = fires_between(&t, at("2026-03-28T12:00:00Z"), at("2026-03-30T12:00:00Z"));
        assert_eq!(fires, [at("2026-03-29T01:00:00Z"), at("2026-03-30T00:30:00Z")]);
    }

    // fault: a fire time inside the fall-back overlap (`30 2 * * *`, Berlin, 25 October 2026) | runs once, at the first 02:30 | (the daemon's decisions, minute by minute) | exactly one drill that day
    #[test]
    fn a_fire_time_in_the_fall_back_overlap_runs_once() {
        // Berlin, 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let t = table("30 2 * * *", "Europe/Berlin", "skip", None);
        assert_eq!(t.next_after(at("2026-10-24T12:00:00Z")), Some(at("2026-10-25T00:30:00Z")), "the first 02:30");
        assert_eq!(t.next_after(at("2026-10-25T00:30:00Z")), Some(at("2026-10-26T01:30:00Z")), "not the second");
        let fires = fires_between(&t, at("2026-10-24T12:00:00Z"), at("2026-10-26T12:00:00Z"));
        assert_eq!(fires, [at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")]);
    }

    /// The drills a daemon polling every minute from `from` to `to` would start.
    fn fires_between(t: &Timetable, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let (mut last, mut now, mut out) = (from, from, Vec::new());
        while now < to {
            let d = t.due(last, now);
            if let Some(h) = d.handled {
                last = h;
            }
            out.extend(d.fire);
            now += chrono::Duration::minutes(1);
        }
        out
    }

    #[test]
    fn an_on_time_fire_is_started_and_nothing_before_it() {
        let t = table("*/10 * * * * *", "UTC", "skip", None);
        let d = t.due(at("2026-11-29T10:00:00Z"), at("2026-11-29T10:00:10.2Z"));
        assert_eq!(d, Due { fire: Some(at("2026-11-29T10:00:10Z")), missed: 0, handled: d.handled });
        assert_eq!(t.due(at("2026-11-29T10:00:10Z"), at("2026-11-29T10:00:15Z")).fire, None, "not yet due");
    }

    #[test]
    fn missed_fires_are_skipped_or_coalesced_into_one() {
        let last = at("2026-11-29T10:00:00Z");
        // Down for 97 s: nine 10-second fire times passed, the latest (10:01:30) 7 s ago.
        let now = at("2026-11-29T10:01:37Z");
        let skip = table("*/10 * * * * *", "UTC", "skip", None).due(last, now);
        assert_eq!((skip.fire, skip.missed, skip.handled), (None, 9, Some(at("2026-11-29T10:01:30Z"))));
        let once = table("*/10 * * * * *", "UTC", "once", None).due(last, now);
        assert_eq!((once.fire, once.missed), (Some(at("2026-11-29T10:01:30Z")), 8), "one drill for all of them");
        // Back within the grace of the latest: skip runs that one and passes over the rest.
        let skip = table("*/10 * * * * *", "UTC", "skip", None).due(last, at("2026-11-29T10:01:33Z"));
        assert_eq!((skip.fire, skip.missed), (Some(at("2026-11-29T10:01:30Z")), 8));
        let daily = |misfire| table("0 3 * * *", "UTC", misfire, None);
        let (last, now) = (at("2026-11-27T03:00:00Z"), at("2026-11-29T11:00:00Z"));
        assert_eq!(daily("once").due(last, now).fire, Some(at("2026-11-29T03:00:00Z")), "once: even hours late");
        assert_eq!(daily("skip").due(last, now).fire, None);
    }

    #[test]
    fn the_interval_is_the_longest_gap_between_fire_times() {
        let interval = |schedule, tz| table(schedule, tz, "skip", None).interval().map(|d| d.as_secs());
        // Daily in Berlin: the day the clocks fall back holds 25 hours.
        assert_eq!(interval("30 3 * * *", "Europe/Berlin"), Some(25 * 3600));
        assert_eq!(interval("30 3 * * *", "UTC"), Some(86_400));
        assert_eq!(interval("0 3 * * 1-5", "UTC"), Some(3 * 86_400), "Friday to Monday");
        assert_eq!(interval("0 * * * 1-5", "UTC"), Some(49 * 3600), "Friday 23:00 to Monday 00:00");
        assert_eq!(interval("*/10 * * * * *", "UTC"), Some(10));
        assert_eq!(interval("0 4 1 * *", "UTC"), Some(31 * 86_400), "the longest month");
    }

    #[test]
    fn jitter_is_a_fixed_offset_within_the_window() {
        let t = table("0 * * * *", "UTC", "skip", Some("10m"));
        let fire = at("2026-11-29T11:00:00Z");
        let start = t.start_at(fire);
        assert!(start >= fire && start < fire + chrono::Duration::minutes(10), "{start}");
        assert_eq!(table("0 * * * *", "UTC", "skip", Some("10m")).start_at(fire), start, "stable across restarts");
        assert_eq!(t.due(at("2026-11-29T10:59:00Z"), fire).fire, None, "not before its jittered start");
        assert_eq!(t.due(at("2026-11-29T10:59:00Z"), start).fire, Some(fire));
    }
}
