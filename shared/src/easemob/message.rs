//! The visitor's text message to Kefu (docs/design.md §3 "Send a text as the visitor").

use serde::Serialize;

use crate::slack::markup::split_by_cost;

/// Easemob's limit on the whole request body as sent.
pub const MAX_BODY_BYTES: usize = 5_120;

/// What Kefu shows the agent about the visitor (`ext.weichat.visitor`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VisitorInfo {
    #[serde(rename = "userNickname")]
    pub user_nickname: String,
    #[serde(rename = "trueName", skip_serializing_if = "String::is_empty", default)]
    pub true_name: String,
    #[serde(
        rename = "companyName",
        skip_serializing_if = "String::is_empty",
        default
    )]
    pub company_name: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub phone: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub email: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub description: String,
}

impl VisitorInfo {
    /// Fields are capped so the ext can never crowd the text out of the 5 KB body.
    pub fn capped(mut self) -> Self {
        for field in [
            &mut self.user_nickname,
            &mut self.true_name,
            &mut self.company_name,
            &mut self.phone,
            &mut self.email,
        ] {
            truncate_chars(field, 128);
        }
        truncate_chars(&mut self.description, 512);
        self
    }
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
    }
}

/// Who an Easemob send-message body is from and to, read back from a
/// stored request (the outbox keeps prepared bodies): a record is sent only
/// when it is a message from its conversation's visitor to the configured
/// service number alone (docs/design.md §4 "Delivery pipeline").
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Addressing {
    pub target_type: String,
    pub target: Vec<String>,
    pub from: String,
}

impl Addressing {
    /// `None` unless `body` is JSON with the three fields.
    pub fn of(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    /// True when `body` is a message from `from` to `service_number` alone
    /// (Easemob user names ignore case, as the callback check does).
    pub fn is_from_to(body: &[u8], from: &str, service_number: &str) -> bool {
        Self::of(body).is_some_and(|addressing| {
            addressing.target_type == "users"
                && matches!(addressing.target.as_slice(), [only] if only.eq_ignore_ascii_case(service_number))
                && addressing.from == from
        })
    }
}

/// One text message from a visitor to the Kefu service number.
#[derive(Debug, Clone)]
pub struct TextMessage<'a> {
    pub from: &'a str,
    pub service_number: &'a str,
    pub visitor: &'a VisitorInfo,
    /// The Kefu skill group to route to (`ext.weichat.queueName`).
    pub queue: Option<&'a str>,
}

/// `ext.weichat` of every visitor message: the visitor card, and the skill
/// group when one is set (docs/design.md §3, `queueName`, as the widget
/// sends it on every message).
pub fn weichat_ext(visitor: &VisitorInfo, queue: Option<&str>) -> serde_json::Value {
    let mut weichat = serde_json::json!({ "visitor": visitor });
    if let Some(queue) = queue {
        weichat["queueName"] = serde_json::json!(queue);
    }
    weichat
}

impl TextMessage<'_> {
    fn body(&self, text: &str) -> serde_json::Value {
        serde_json::json!({
            "target_type": "users",
            "target": [self.service_number],
            "msg": { "type": "txt", "msg": text },
            "from": self.from,
            "ext": { "weichat": weichat_ext(self.visitor, self.queue) },
        })
    }

    /// The request bodies for `text`, split into ordered messages so that each
    /// whole body stays within 5,120 bytes.
    pub fn bodies(&self, text: &str) -> Vec<Vec<u8>> {
        let overhead = serde_json::to_vec(&self.body("")).map_or(0, |b| b.len());
        let budget = MAX_BODY_BYTES.saturating_sub(overhead).max(64);
        split_by_cost(text, budget, json_escaped_len)
            .into_iter()
            .map(|part| serde_json::to_vec(&self.body(&part)).unwrap_or_default())
            .collect()
    }
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn json_escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0C}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_body_is_sent_only_from_its_visitor_to_the_service_number() {
        let info = VisitorInfo::default();
        let message = TextMessage {
            from: "T1_U2_D3",
            service_number: "kefu-1",
            visitor: &info,
            queue: None,
        };
        let body = &message.bodies("hello")[0];
        assert!(Addressing::is_from_to(body, "T1_U2_D3", "kefu-1"));
        assert!(!Addressing::is_from_to(body, "T1_U9_D3", "kefu-1"));
        assert!(!Addressing::is_from_to(body, "T1_U2_D3", "kefu-2"));
        assert!(Addressing::is_from_to(body, "T1_U2_D3", "KEFU-1"));
        let two_targets = br#"{"target_type":"users","target":["kefu-1","x"],"from":"T1_U2_D3"}"#;
        assert!(!Addressing::is_from_to(two_targets, "T1_U2_D3", "kefu-1"));
        let a_group = br#"{"target_type":"chatgroups","target":["kefu-1"],"from":"T1_U2_D3"}"#;
        assert!(!Addressing::is_from_to(a_group, "T1_U2_D3", "kefu-1"));
        assert!(!Addressing::is_from_to(b"not json", "T1_U2_D3", "kefu-1"));
    }

    fn visitor() -> VisitorInfo {
        VisitorInfo {
            user_nickname: "Ada".into(),
            company_name: "Acme".into(),
            ..Default::default()
        }
    }

    #[test]
    fn body_has_the_documented_shape() {
        let visitor = visitor();
        let message = TextMessage {
            from: "T1_U1_D1",
            service_number: "kefu1",
            visitor: &visitor,
            queue: None,
        };
        let bodies = message.bodies("hi");
        assert_eq!(bodies.len(), 1);
        let value: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "target_type": "users", "target": ["kefu1"],
                "msg": {"type": "txt", "msg": "hi"}, "from": "T1_U1_D1",
                "ext": {"weichat": {"visitor": {"userNickname": "Ada", "companyName": "Acme"}}}
            })
        );
    }

    #[test]
    fn a_route_adds_the_queue_name() {
        let visitor = visitor();
        let message = TextMessage {
            from: "T1_U1_D1",
            service_number: "kefu1",
            visitor: &visitor,
            queue: Some("售后"),
        };
        let value: serde_json::Value = serde_json::from_slice(&message.bodies("hi")[0]).unwrap();
        assert_eq!(value["ext"]["weichat"]["queueName"], "售后");
        assert_eq!(value["ext"]["weichat"]["visitor"]["userNickname"], "Ada");
    }

    #[test]
    fn long_text_splits_into_bodies_within_5kb_losing_nothing() {
        let visitor = visitor();
        let message = TextMessage {
            from: "T1_U1_D1",
            service_number: "kefu1",
            visitor: &visitor,
            queue: None,
        };
        let text = "word \"quoted\" 你好 ".repeat(800);
        let bodies = message.bodies(&text);
        assert!(bodies.len() > 1);
        let mut words = Vec::new();
        for body in &bodies {
            assert!(body.len() <= MAX_BODY_BYTES, "body of {} bytes", body.len());
            let value: serde_json::Value = serde_json::from_slice(body).unwrap();
            let part = value["msg"]["msg"].as_str().unwrap().to_string();
            words.extend(part.split_whitespace().map(str::to_string));
        }
        let expected: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        assert_eq!(words, expected);
    }

    #[test]
    fn capped_limits_every_field() {
        let info = VisitorInfo {
            user_nickname: "n".repeat(1000),
            description: "d".repeat(5000),
            ..visitor()
        }
        .capped();
        assert_eq!(info.user_nickname.chars().count(), 128);
        assert_eq!(info.description.chars().count(), 512);
    }
}
