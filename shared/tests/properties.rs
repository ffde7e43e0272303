//! Properties of the pure parts, over generated input (proptest): the
//! visitor-id codec, Slack markup and escaping, the splitting that keeps
//! Slack posts and Easemob bodies within their limits, and Slack request
//! signatures.

use std::collections::HashMap;

use kefu_bridge::easemob::message::MAX_BODY_BYTES;
use kefu_bridge::easemob::{TextMessage, VisitorInfo};
use kefu_bridge::secret::Secret;
use kefu_bridge::slack::markup::{escape, escaped_parts, split_by_cost, to_plain_text, unescape};
use kefu_bridge::slack::signature::{SignatureError, SlackVerifier};
use kefu_bridge::slack::{ChannelId, UserId};
use kefu_bridge::visitor::{VisitorId, MAX_USERNAME_BYTES};
use proptest::prelude::*;

// ── Generators ──────────────────────────────────────────────────────────

/// A Slack id with the given first letter: upper-case letters and digits.
fn slack_id(first: &'static str, max_rest: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Z0-9]{{1,{max_rest}}}"))
        .unwrap()
        .prop_map(move |rest| format!("{first}{rest}"))
}

fn visitor_parts() -> impl Strategy<Value = (String, String, String)> {
    (
        prop_oneof![slack_id("T", 20), slack_id("E", 20)],
        prop_oneof![slack_id("U", 20), slack_id("W", 20)],
        prop_oneof![slack_id("D", 20), slack_id("C", 20), slack_id("G", 20)],
    )
}

/// Text with what makes splitting and escaping hard: whitespace runs,
/// CJK, emoji, Slack's reserved characters, JSON's escaped characters.
fn tricky_text(max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::string::string_regex("[a-z]{1,12}").unwrap(),
        2 => Just(" ".to_string()),
        1 => Just("\n".to_string()),
        1 => Just("  \t ".to_string()),
        2 => proptest::string::string_regex("[你好世界客服消息]{1,30}").unwrap(),
        1 => Just("😀".to_string()),
        1 => Just("&".to_string()),
        1 => Just("<".to_string()),
        1 => Just(">".to_string()),
        1 => Just("\"".to_string()),
        1 => Just("\\".to_string()),
        1 => Just("\u{1}".to_string()),
        1 => Just("&amp;".to_string()),
        1 => Just("&lt;".to_string()),
    ];
    proptest::collection::vec(piece, 0..max).prop_map(|pieces| pieces.concat())
}

/// True when `parts`, in order, make up `text` with only whitespace left
/// out between them (and at the ends).
fn only_whitespace_dropped(text: &str, parts: &[String]) -> bool {
    let mut rest = text;
    for part in parts {
        if !rest.starts_with(part.as_str()) {
            rest = rest.trim_start();
            if !rest.starts_with(part.as_str()) {
                return false;
            }
        }
        rest = &rest[part.len()..];
    }
    rest.trim().is_empty()
}

fn cost_of(text: &str, cost: impl Fn(char) -> usize) -> usize {
    text.chars().map(cost).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // ── Visitor ids (docs/design.md §3 "Visitor ids") ─────────────────────────────

    #[test]
    fn visitor_ids_round_trip_in_any_case(
        (workspace, user, channel) in visitor_parts(),
        flips in proptest::collection::vec(any::<bool>(), 64),
    ) {
        let id = VisitorId::new(
            &workspace,
            &UserId::parse(&user).unwrap(),
            &ChannelId::parse(&channel).unwrap(),
        );
        let encoded = format!("{workspace}_{user}_{channel}");
        prop_assume!(encoded.len() <= MAX_USERNAME_BYTES);
        let id = id.unwrap();
        prop_assert_eq!(id.to_string(), encoded.clone());
        // Easemob stores it lower-case; callbacks bring it back that way.
        prop_assert_eq!(VisitorId::decode(&encoded.to_ascii_lowercase()).unwrap(), id.clone());
        prop_assert_eq!(VisitorId::decode(&encoded).unwrap(), id.clone());
        let mixed: String = encoded
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, flip)| if *flip { c.to_ascii_lowercase() } else { c })
            .collect();
        prop_assert_eq!(VisitorId::decode(&mixed).unwrap(), id);
    }

    #[test]
    fn visitor_ids_that_are_too_long_are_refused((workspace, user, channel) in visitor_parts()) {
        let encoded = format!("{workspace}_{user}_{channel}");
        let new = VisitorId::new(
            &workspace,
            &UserId::parse(&user).unwrap(),
            &ChannelId::parse(&channel).unwrap(),
        );
        prop_assert_eq!(new.is_ok(), encoded.len() <= MAX_USERNAME_BYTES);
        prop_assert_eq!(VisitorId::decode(&encoded).is_ok(), encoded.len() <= MAX_USERNAME_BYTES);
    }

    #[test]
    fn decoding_any_string_is_total_and_consistent(raw in "\\PC{0,80}|[a-z0-9_]{0,70}") {
        if let Ok(id) = VisitorId::decode(&raw) {
            let encoded = id.to_string();
            prop_assert!(encoded.eq_ignore_ascii_case(&raw));
            prop_assert!(encoded.len() <= MAX_USERNAME_BYTES);
            prop_assert!(encoded
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'));
            prop_assert_eq!(VisitorId::decode(&encoded).unwrap(), id);
        }
    }

    // ── Markup (docs/design.md §2) ────────────────────────────────────────────────

    #[test]
    fn escaped_text_reads_back_as_itself(text in tricky_text(40)) {
        prop_assert_eq!(unescape(&escape(&text)), text.clone());
        // Escaped text has no tags, so it is shown exactly as written.
        prop_assert_eq!(to_plain_text(&escape(&text), &HashMap::new()), text);
    }

    #[test]
    fn plain_text_conversion_never_fails(text in "\\PC{0,200}") {
        let out = to_plain_text(&text, &HashMap::new());
        // Without markup characters nothing changes.
        if !text.contains(['<', '&']) {
            prop_assert_eq!(out, text);
        }
    }

    #[test]
    fn splitting_keeps_everything_but_whitespace_at_cuts_within_the_limit(
        text in tricky_text(120),
        limit in 1usize..60,
        bytes in any::<bool>(),
    ) {
        let cost = |c: char| if bytes { c.len_utf8() } else { 1 };
        let parts = split_by_cost(&text, limit, cost);
        prop_assert!(!parts.is_empty());
        prop_assert!(only_whitespace_dropped(&text, &parts), "{:?} → {:?}", text, parts);
        for part in &parts {
            // Only a single character costlier than the limit may exceed it.
            prop_assert!(
                cost_of(part, cost) <= limit || part.chars().count() == 1,
                "{:?} costs {} > {}", part, cost_of(part, cost), limit
            );
        }
        if parts.len() > 1 {
            prop_assert!(parts.iter().all(|p| !p.is_empty()));
        }
    }

    #[test]
    fn slack_parts_are_whole_escapes_within_the_limit(
        text in tricky_text(120),
        limit in 5usize..80,
    ) {
        let parts = escaped_parts(&text, limit);
        let plain: Vec<String> = parts.iter().map(|p| unescape(p)).collect();
        prop_assert!(only_whitespace_dropped(&text, &plain), "{:?} → {:?}", text, parts);
        for part in &parts {
            prop_assert!(part.chars().count() <= limit, "{:?} > {}", part, limit);
            // Never cut inside an escape: each part escapes on its own.
            prop_assert_eq!(escape(&unescape(part)), part.clone());
        }
    }

    // ── Slack signatures (docs/design.md §2 "Request signing") ────────────────────

    #[test]
    fn a_signature_verifies_and_any_one_byte_change_does_not(
        secret in "[ -~]{1,40}",
        body in proptest::collection::vec(any::<u8>(), 0..300),
        skew in -300i64..=300,
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let now = 1_700_000_000i64;
        let timestamp = (now + skew).to_string();
        let verifier = SlackVerifier::new(Secret::new(secret.clone()));
        let signature = verifier.sign(&timestamp, &body);
        prop_assert_eq!(verifier.verify(Some(&timestamp), Some(&signature), &body, now), Ok(()));

        if !body.is_empty() {
            let mut changed = body.clone();
            changed[at.index(body.len())] ^= flip;
            prop_assert_eq!(
                verifier.verify(Some(&timestamp), Some(&signature), &changed, now),
                Err(SignatureError::Mismatch)
            );
        }
        // One byte more or less.
        let mut longer = body.clone();
        longer.push(flip);
        prop_assert!(verifier.verify(Some(&timestamp), Some(&signature), &longer, now).is_err());

        // Any one character of the signature changed.
        let mut sig = signature.clone().into_bytes();
        let i = 3 + at.index(sig.len() - 3);
        sig[i] = if sig[i] == b'0' { b'1' } else { b'0' };
        let sig = String::from_utf8(sig).unwrap();
        prop_assert!(verifier.verify(Some(&timestamp), Some(&sig), &body, now).is_err());

        // Another secret, or another timestamp inside the window.
        let other = SlackVerifier::new(Secret::new(format!("{secret}x")));
        prop_assert_eq!(
            other.verify(Some(&timestamp), Some(&signature), &body, now),
            Err(SignatureError::Mismatch)
        );
        let moved = (now + skew + if skew > 0 { -1 } else { 1 }).to_string();
        prop_assert_eq!(
            verifier.verify(Some(&moved), Some(&signature), &body, now),
            Err(SignatureError::Mismatch)
        );
    }
}

proptest! {
    // Texts of several kilobytes, JSON-encoded once per part: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn easemob_bodies_stay_within_5_kb_and_keep_the_text(
        text in tricky_text(2_000),
        nickname in "\\PC{0,300}",
        description in "\\PC{0,900}",
        queue in proptest::option::of("\\PC{1,100}"),
    ) {
        let visitor = VisitorInfo {
            user_nickname: nickname,
            description,
            ..VisitorInfo::default()
        }
        .capped();
        let message = TextMessage {
            from: "T0TEAM1_U0ADA_D0ADA",
            service_number: "kefuchannelimid_123456",
            visitor: &visitor,
            queue: queue.as_deref(),
        };
        let bodies = message.bodies(&text);
        prop_assert!(!bodies.is_empty());
        let mut texts = Vec::new();
        for body in &bodies {
            prop_assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
            let value: serde_json::Value = serde_json::from_slice(body).unwrap();
            prop_assert_eq!(&value["from"], "T0TEAM1_U0ADA_D0ADA");
            texts.push(value["msg"]["msg"].as_str().unwrap().to_string());
        }
        prop_assert!(only_whitespace_dropped(&text, &texts));
    }
}
