//! Wall-clock time as epoch seconds: what Slack timestamps, DynamoDB TTLs and
//! token expiries are all written in. Also the OS random source, which
//! either gives unguessable bytes or fails (docs/design.md §2 "OAuth v2
//! install": the `state` must be one-time and unguessable).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The time the outbox runs on (docs/design.md §4 "Delivery pipeline"):
/// when a message is due, when a lease ends, when a message is given up.
/// The system clock in production; tests move a [`ManualClock`] forward
/// instead of sleeping through a backoff.
pub trait Clock: Send + Sync {
    fn epoch_secs(&self) -> i64;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn epoch_secs(&self) -> i64 {
        now_epoch_secs()
    }
}

/// Wall-clock time moved forward by whatever a test advanced it: records
/// written on the system clock (`created_at`) and due times on this one
/// stay comparable.
#[derive(Debug, Default)]
pub struct ManualClock {
    ahead_secs: AtomicI64,
}

impl ManualClock {
    /// As if `secs` seconds had passed.
    pub fn advance(&self, secs: i64) {
        self.ahead_secs.fetch_add(secs, Ordering::SeqCst);
    }

    /// How far it was moved so far.
    pub fn advanced(&self) -> i64 {
        self.ahead_secs.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn epoch_secs(&self) -> i64 {
        now_epoch_secs() + self.advanced()
    }
}

pub fn now_epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn now_epoch_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second) in UTC for epoch seconds.
/// Dates written for people (the benchmark report); this avoids a date
/// crate for one format.
pub fn utc_parts(epoch_secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = epoch_secs.div_euclid(86_400);
    let secs_of_day = epoch_secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs_of_day / 3_600) as u32,
        (secs_of_day % 3_600 / 60) as u32,
        (secs_of_day % 60) as u32,
    )
}

/// The operating system's random source failed: nothing that must be
/// unguessable (an OAuth `state`, a visitor's password) can be made now.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[error("the operating system's random source failed")]
pub struct RandomnessUnavailable;

/// Unguessable bytes from the OS, for OAuth `state` and visitor passwords.
/// Fails closed: when the OS cannot give randomness there is no fallback
/// (bytes derived from the time could be guessed), and the caller refuses
/// the request instead.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomnessUnavailable> {
    random_bytes_from(getrandom::getrandom)
}

/// [`random_bytes`] over any source, so the failure path can be tested.
fn random_bytes_from<const N: usize, E>(
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<[u8; N], RandomnessUnavailable> {
    let mut buf = [0u8; N];
    fill(&mut buf).map_err(|_| RandomnessUnavailable)?;
    Ok(buf)
}

/// Bytes that only need to differ, never to stay secret: retry jitter, the
/// conversation a drain starts at, a multipart boundary. Random when the OS
/// can; otherwise derived from the time, since a delayed retry or a stalled
/// upload would cost more than predictability does here.
pub fn spread_bytes<const N: usize>() -> [u8; N] {
    random_bytes().unwrap_or_else(|RandomnessUnavailable| {
        let seed = now_epoch_millis().to_le_bytes();
        let mut buf = [0u8; N];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = seed[i % seed.len()].wrapping_add(i as u8);
        }
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_random_source_is_an_error_not_a_fallback() {
        let failed = random_bytes_from::<32, _>(|_| Err(getrandom::Error::UNSUPPORTED));
        assert_eq!(failed, Err(RandomnessUnavailable));
        let filled = random_bytes_from::<4, getrandom::Error>(|buf| {
            buf.copy_from_slice(&[1, 2, 3, 4]);
            Ok(())
        });
        assert_eq!(filled, Ok([1, 2, 3, 4]));
        let (a, b) = (random_bytes::<16>().unwrap(), random_bytes::<16>().unwrap());
        assert_ne!(a, b);
    }

    #[test]
    fn a_manual_clock_moves_only_forward_by_what_it_is_told() {
        let clock = ManualClock::default();
        let start = clock.epoch_secs();
        clock.advance(3_600);
        assert!(clock.epoch_secs() >= start + 3_600);
        assert!(clock.epoch_secs() < start + 3_600 + 60);
        assert_eq!(clock.advanced(), 3_600);
    }

    #[test]
    fn utc_parts_matches_known_instants() {
        assert_eq!(utc_parts(0), (1970, 1, 1, 0, 0, 0));
        // 2015-08-30T12:36:00Z.
        assert_eq!(utc_parts(1_440_938_160), (2015, 8, 30, 12, 36, 0));
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(utc_parts(1_709_251_199), (2024, 2, 29, 23, 59, 59));
    }
}
