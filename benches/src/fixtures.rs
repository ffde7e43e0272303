//! Realistic inputs, shared by the criterion micro-benchmarks and the
//! end-to-end runs so both measure the same payloads.

use serde_json::{json, Value};

/// The workspace every benchmark request belongs to.
pub const TEAM: &str = "T0BENCH01";
/// Bot scopes of the benchmark installation: with `chat:write.customize`,
/// agent replies carry the agent's name and avatar.
pub const SCOPES: &[&str] = &[
    "chat:write",
    "chat:write.customize",
    "im:history",
    "channels:history",
    "users:read",
    "team:read",
];

/// One Slack conversation: a person in a channel.
#[derive(Debug, Clone, Copy)]
pub struct Conversation {
    pub user: &'static str,
    pub display_name: &'static str,
    pub real_name: &'static str,
    pub channel: &'static str,
    pub channel_type: &'static str,
}

impl Conversation {
    /// The Kefu visitor id (`teamId_userId_channelId`).
    pub fn visitor(&self) -> String {
        format!("{TEAM}_{}_{}", self.user, self.channel)
    }
}

/// Three direct messages and one channel conversation.
pub const CONVERSATIONS: [Conversation; 4] = [
    Conversation {
        user: "U0CUSTOMER1",
        display_name: "casey",
        real_name: "Casey Customer",
        channel: "D0BENCHDM1",
        channel_type: "im",
    },
    Conversation {
        user: "U0CUSTOMER2",
        display_name: "robin",
        real_name: "Robin Buyer",
        channel: "D0BENCHDM2",
        channel_type: "im",
    },
    Conversation {
        user: "U0CUSTOMER3",
        display_name: "sam",
        real_name: "Sam Shopper",
        channel: "D0BENCHDM3",
        channel_type: "im",
    },
    Conversation {
        user: "U0CUSTOMER4",
        display_name: "alex",
        real_name: "Alex Client",
        channel: "C0BENCHCH1",
        channel_type: "channel",
    },
];

/// Request `i` of a run: every other one in the first direct message (the
/// same conversation again and again), the others rotating over the rest
/// (a few conversations, one of them a channel).
pub fn conversation(i: usize) -> &'static Conversation {
    if i.is_multiple_of(2) {
        &CONVERSATIONS[0]
    } else {
        &CONVERSATIONS[1 + (i / 2) % (CONVERSATIONS.len() - 1)]
    }
}

/// What the visitor writes: a mention, a labelled and a bare link, a special
/// mention and escaped entities, as Slack sends them.
pub const SLACK_TEXT: &str = "Hi <@U0CUSTOMER2>! Order #1234 &amp; its invoice at \
<https://shop.example.com/orders/1234?ref=slack|the order page> still say &lt;pending&gt; \
after two days. Could someone check? Shipping terms: <https://shop.example.com/help/shipping> \
<!here> thanks :pray:";

/// A Slack `event_callback` body for a person's message, shaped like a real
/// one (rich-text blocks, authorizations, event context): about 1.5 KB.
pub fn slack_event_body(event_id: &str, conversation: &Conversation, ts: &str) -> String {
    let link = |url: &str, text: Option<&str>| {
        let mut element = json!({ "type": "link", "url": url });
        if let Some(text) = text {
            element["text"] = json!(text);
        }
        element
    };
    let blocks = json!([{
        "type": "rich_text",
        "block_id": "x1Yq7",
        "elements": [{
            "type": "rich_text_section",
            "elements": [
                { "type": "text", "text": "Hi " },
                { "type": "user", "user_id": "U0CUSTOMER2" },
                { "type": "text", "text": "! Order #1234 & its invoice at " },
                link("https://shop.example.com/orders/1234?ref=slack", Some("the order page")),
                { "type": "text", "text": " still say <pending> after two days. Could someone check? Shipping terms: " },
                link("https://shop.example.com/help/shipping", None),
                { "type": "text", "text": " " },
                { "type": "broadcast", "range": "here" },
                { "type": "text", "text": " thanks " },
                { "type": "emoji", "name": "pray", "unicode": "1f64f" }
            ]
        }]
    }]);
    json!({
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "context_team_id": TEAM,
        "context_enterprise_id": null,
        "api_app_id": bridge_tests::app::APP_ID,
        "event": {
            "user": conversation.user,
            "type": "message",
            "ts": ts,
            "client_msg_id": format!("5a2f1f0e-1111-4a0c-9a9e-{:0>12}", ts.replace('.', "")),
            "text": SLACK_TEXT,
            "team": TEAM,
            "blocks": blocks,
            "channel": conversation.channel,
            "event_ts": ts,
            "channel_type": conversation.channel_type,
        },
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_795_687_200,
        "authorizations": [{
            "enterprise_id": null,
            "team_id": TEAM,
            "user_id": format!("U{TEAM}BOT"),
            "is_bot": true,
            "is_enterprise_install": false
        }],
        "is_ext_shared_channel": false,
        "event_context": "4-eyJldCI6Im1lc3NhZ2UiLCJ0aWQiOiJUMEJFTkNIMDEiLCJhaWQiOiJBMEtFRlVBUFAiLCJjaWQiOiJEMEJFTkNIRE0xIn0"
    })
    .to_string()
}

/// What an agent answers (escaped on the way to Slack).
pub const AGENT_TEXT: &str = "Thanks for waiting, Casey! Order #1234 shipped this morning & \
the invoice now says <paid>. Tracking: https://shop.example.com/track/1Z999AA10123456784 \
Anything else I can help with?";

/// `ext` of a Kefu agent reply, as Kefu sends it.
pub fn agent_ext() -> Value {
    bridge_tests::callback_kit::agent_ext()
}

/// About `bytes` bytes of visitor text: sentences with punctuation and
/// quotes, and a Chinese passage without spaces every few sentences (the
/// splitter's slow path).
pub fn long_text(bytes: usize) -> String {
    const SENTENCES: [&str; 4] = [
        "The parcel arrived today, but the \"large\" box was damaged on one corner. ",
        "I've attached photos of the label and the seal; the tracking number is 1Z999AA10123456784. ",
        "我们昨天收到了包裹，但是外包装有明显的破损，里面的杯子碎了两个，请帮忙处理一下退换货。",
        "Could you send a replacement before Friday?\nThanks & best regards,\nCasey\n\n",
    ];
    let mut text = String::with_capacity(bytes + 128);
    for sentence in SENTENCES.iter().cycle() {
        if text.len() >= bytes {
            break;
        }
        text.push_str(sentence);
    }
    text
}
