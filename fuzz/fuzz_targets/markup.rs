//! Text both ways: Slack markup to plain text, escaping for Slack, and the
//! splitting that keeps Slack parts and Easemob bodies within their limits.
#![no_main]

use std::collections::HashMap;

use kefu_bridge::easemob::message::MAX_BODY_BYTES;
use kefu_bridge::easemob::{TextMessage, VisitorInfo};
use kefu_bridge::relay::routing::checked_queue_name;
use kefu_bridge::slack::markup::{
    escape, escaped_parts, mentioned_users, split_by_cost, to_plain_text, unescape,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let users = mentioned_users(text);
    let names: HashMap<String, String> = users.iter().map(|u| (u.clone(), u.repeat(2))).collect();
    let _ = to_plain_text(text, &names);
    assert_eq!(unescape(&escape(text)), text);

    let limit = usize::from(limit).max(1);
    let parts = split_by_cost(text, limit, |c| c.len_utf8());
    let kept: String = parts
        .concat()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let all: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(kept, all, "only whitespace is dropped");
    for part in &parts {
        assert!(part.len() <= limit || part.chars().count() == 1);
    }

    let slack_limit = limit.max(5);
    for part in escaped_parts(text, slack_limit) {
        assert!(part.chars().count() <= slack_limit);
        assert_eq!(escape(&unescape(&part)), part);
    }

    let visitor = VisitorInfo {
        user_nickname: text.chars().take(300).collect(),
        ..VisitorInfo::default()
    }
    .capped();
    let queue: String = text.chars().take(100).collect();
    let message = TextMessage {
        from: "T0FUZZ_U0FUZZ_D0FUZZ",
        service_number: "kefuchannelimid_fuzz",
        visitor: &visitor,
        queue: checked_queue_name(&queue),
    };
    for body in message.bodies(text) {
        assert!(body.len() <= MAX_BODY_BYTES);
    }
});
