//! Slack request signing (docs/design.md §2 "Request signing").

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// Slack's replay window.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing X-Slack-Signature header")]
    MissingSignature,
    #[error("missing X-Slack-Request-Timestamp header")]
    MissingTimestamp,
    #[error("X-Slack-Request-Timestamp is not a number")]
    BadTimestamp,
    #[error("request timestamp is more than 5 minutes from now")]
    Stale,
    #[error("X-Slack-Signature is not v0=<hex>")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
    /// This function was given no signing secret (it serves no Slack
    /// requests): nothing verifies, rather than an empty key.
    #[error("no signing secret is configured for this function")]
    NoSecret,
}

pub struct SlackVerifier {
    signing_secret: Secret,
}

impl SlackVerifier {
    pub fn new(signing_secret: Secret) -> Self {
        Self { signing_secret }
    }

    /// Checks `v0=hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + body))`
    /// over the raw body bytes, in constant time, within ±300 s of `now`.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_epoch_secs: i64,
    ) -> Result<(), SignatureError> {
        if self.signing_secret.expose().is_empty() {
            return Err(SignatureError::NoSecret);
        }
        let signature = signature.ok_or(SignatureError::MissingSignature)?;
        let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        // Checked: a hostile timestamp near the ends of `i64` must not wrap
        // into the window (or panic a debug build).
        let within_window = now_epoch_secs
            .checked_sub(ts)
            .and_then(i64::checked_abs)
            .is_some_and(|skew| skew <= MAX_CLOCK_SKEW_SECS);
        if !within_window {
            return Err(SignatureError::Stale);
        }
        let hex_part = signature
            .trim()
            .strip_prefix("v0=")
            .ok_or(SignatureError::Malformed)?;
        let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
        // `verify_slice` compares in constant time.
        self.mac(timestamp.trim(), body)
            .verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)
    }

    /// The header value Slack would send; for local tools and tests that
    /// sign their own requests (there is no switch that skips the check).
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        format!(
            "v0={}",
            hex::encode(self.mac(timestamp, body).finalize().into_bytes())
        )
    }

    fn mac(&self, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.signing_secret.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example ("Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn verifier() -> SlackVerifier {
        SlackVerifier::new(Secret::new(SECRET))
    }

    #[test]
    fn slack_documented_example_verifies() {
        assert_eq!(verifier().sign(TIMESTAMP, BODY.as_bytes()), SIGNATURE);
        let now = 1_531_420_618 + 10;
        assert_eq!(
            verifier().verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), now),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_does_not_verify() {
        let now = 1_531_420_618;
        let body = BODY.replace("roadrunner", "coyote");
        assert_eq!(
            verifier().verify(Some(TIMESTAMP), Some(SIGNATURE), body.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_or_future_timestamps_are_refused() {
        let ts = 1_531_420_618;
        let v = verifier();
        assert_eq!(
            v.verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), ts + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            v.verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), ts - 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            v.verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), ts + 300),
            Ok(())
        );
    }

    /// Hostile timestamps near the ends of `i64` are refused as stale, not
    /// a subtraction that overflows (a panic in a debug build, a wrap that
    /// could pass the window in a release one).
    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let v = verifier();
        for now in [1_531_420_618, 0, -1] {
            for ts in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
                let ts = ts.to_string();
                assert_eq!(
                    v.verify(Some(&ts), Some(SIGNATURE), BODY.as_bytes(), now),
                    Err(SignatureError::Stale),
                    "timestamp {ts} at {now}"
                );
            }
        }
    }

    #[test]
    fn an_empty_signing_secret_verifies_nothing() {
        let unconfigured = SlackVerifier::new(Secret::new(""));
        let signature = unconfigured.sign(TIMESTAMP, BODY.as_bytes());
        assert_eq!(
            unconfigured.verify(
                Some(TIMESTAMP),
                Some(&signature),
                BODY.as_bytes(),
                1_531_420_618
            ),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let v = verifier();
        let now = 1_531_420_618;
        assert_eq!(
            v.verify(Some(TIMESTAMP), None, b"", now),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            v.verify(None, Some(SIGNATURE), b"", now),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            v.verify(Some("soon"), Some(SIGNATURE), b"", now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            v.verify(Some(TIMESTAMP), Some("v1=abcd"), b"", now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(Some(TIMESTAMP), Some("v0=zz"), b"", now),
            Err(SignatureError::Malformed)
        );
    }
}
