//! What a visitor sends Kefu besides plain text: images and files, a robot
//! menu choice, a satisfaction rating, a request for a person.
//!
//! Shapes are the ones the Kefu web visitor SDK (`easemob/kefu-webim`, at
//! v53.2.15.final, commit 6391491c65666296f7fec1bb1b44b4a5c61a5e9b) sends,
//! since Kefu's robot and enquiry handling read exactly these fields:
//! - menu choice: `src/js/app/pages/main/chat.js`, the `button.js_robotbtn`
//!   click handler: `channel.sendText(this.innerText, { ext: { msgtype: {
//!   choice: { menuid: this.getAttribute("data-id") } } } })`, where the
//!   button text is the item's `name` and `data-id` its `id`
//!   (`src/js/app/pages/main/channel.js`, `case "robotList"`);
//! - rating: `src/js/app/pages/main/satisfaction.js`, `_sendSatisfaction`:
//!   `channel.sendText("", { ext: { weichat: { ctrlType: "enquiry",
//!   ctrlArgs: { inviteId, serviceSessionId, detail, summary, … } } } })`
//!   ("后端类型要求，inviteId必须传数字": Kefu wants the invite id as the
//!   number it sent, so it is echoed back unchanged);
//! - transfer: `src/js/app/pages/main/channel.js`, `_sendTransferToKf`: a
//!   `cmd` message with `action: "TransferToKf"` and `ext: { weichat: {
//!   ctrlArgs: { id, serviceSessionId } } }`.
//!
//! Like every message of the web SDK (its `_setExt` adds
//! `weichat.visitor`), each also carries `ext.weichat.visitor`, so the agent
//! sees who answered.

use serde_json::{json, Value};

use super::message::{weichat_ext, VisitorInfo, MAX_BODY_BYTES};
use crate::secret::Secret;

/// Sender, recipient and visitor card shared by every message.
#[derive(Debug, Clone, Copy)]
pub struct VisitorEnvelope<'a> {
    pub from: &'a str,
    pub service_number: &'a str,
    pub visitor: &'a VisitorInfo,
    /// The Kefu skill group to route to (`ext.weichat.queueName`).
    pub queue: Option<&'a str>,
}

/// An uploaded image or file, as a message points at it (docs/design.md §3 "Files").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMessage {
    pub kind: FileKind,
    /// `{base}/{org}/{app}/chatfiles/{uuid}`
    pub url: String,
    pub filename: String,
    pub secret: Option<Secret>,
    pub file_length: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `img`, with the original's size when Slack knows it.
    Image { size: Option<(u64, u64)> },
    /// `file`
    File,
}

impl VisitorEnvelope<'_> {
    /// `{target_type, target, from, msg, ext}` with `ext.weichat.visitor`
    /// (and `queueName`) added to whatever `ext` the message has.
    fn body(&self, msg: Value, mut ext: Value) -> Value {
        if let Value::Object(common) = weichat_ext(self.visitor, self.queue) {
            for (name, value) in common {
                ext["weichat"][name] = value;
            }
        }
        json!({
            "target_type": "users",
            "target": [self.service_number],
            "msg": msg,
            "from": self.from,
            "ext": ext,
        })
    }

    /// An `img` or `file` message.
    pub fn file(&self, file: &FileMessage) -> Vec<u8> {
        let build = |filename: &str| {
            let mut msg = json!({
                "type": match file.kind { FileKind::Image { .. } => "img", FileKind::File => "file" },
                "url": file.url,
                "filename": filename,
                "file_length": file.file_length,
            });
            if let Some(secret) = &file.secret {
                msg["secret"] = json!(secret.expose());
            }
            if let FileKind::Image {
                size: Some((width, height)),
            } = file.kind
            {
                msg["size"] = json!({ "width": width, "height": height });
            }
            self.body(msg, json!({}))
        };
        fitted(&file.filename, build)
    }

    /// The answer to a robot menu: the item's name as text, its id as
    /// `ext.msgtype.choice.menuid` (echoed as Kefu sent it).
    pub fn menu_choice(&self, name: &str, menu_id: &Value) -> Vec<u8> {
        fitted(name, |name| {
            self.body(
                json!({ "type": "txt", "msg": name }),
                json!({ "msgtype": { "choice": { "menuid": menu_id } } }),
            )
        })
    }

    /// The answer to a satisfaction invitation: an empty text whose
    /// `ext.weichat` is `ctrlType: "enquiry"` with the invitation's ids, the
    /// score as a string (`"1"`–`"5"`) and the comment (`""` for none).
    pub fn enquiry(
        &self,
        invite_id: &Value,
        service_session_id: &Value,
        score: u8,
        comment: &str,
    ) -> Vec<u8> {
        fitted(comment, |detail| {
            self.body(
                json!({ "type": "txt", "msg": "" }),
                json!({ "weichat": {
                    "ctrlType": "enquiry",
                    "ctrlArgs": {
                        "inviteId": invite_id,
                        "serviceSessionId": service_session_id,
                        "summary": score.to_string(),
                        "detail": detail,
                    },
                } }),
            )
        })
    }

    /// The visitor asks the robot for a person: `cmd` `TransferToKf`.
    pub fn transfer_to_agent(&self, id: &Value, service_session_id: &Value) -> Vec<u8> {
        serde_json::to_vec(&self.body(
            json!({ "type": "cmd", "action": "TransferToKf" }),
            json!({ "weichat": { "ctrlArgs": { "id": id, "serviceSessionId": service_session_id } } }),
        ))
        .unwrap_or_default()
    }
}

/// The body `build` makes of `text`, shortened at a character boundary
/// until the whole body fits Easemob's 5,120 bytes. These answers are one
/// message each (a rating cannot be split), so what does not fit is cut.
fn fitted(text: &str, build: impl Fn(&str) -> Value) -> Vec<u8> {
    let whole = serde_json::to_vec(&build(text)).unwrap_or_default();
    if whole.len() <= MAX_BODY_BYTES {
        return whole;
    }
    let overhead = serde_json::to_vec(&build("")).map_or(0, |b| b.len());
    let mut budget = MAX_BODY_BYTES.saturating_sub(overhead);
    let mut end = 0;
    for (index, c) in text.char_indices() {
        let cost = serde_json::to_string(&c).map_or(6, |s| s.len() - 2);
        if cost > budget {
            break;
        }
        budget -= cost;
        end = index + c.len_utf8();
    }
    serde_json::to_vec(&build(&text[..end])).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visitor() -> VisitorInfo {
        VisitorInfo {
            user_nickname: "Ada".into(),
            ..Default::default()
        }
    }

    fn parse(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    #[test]
    fn shapes_match_the_kefu_web_sdk() {
        let info = visitor();
        let envelope = VisitorEnvelope {
            from: "T1_U1_D1",
            service_number: "kefu1",
            visitor: &info,
            queue: None,
        };
        assert_eq!(
            parse(&envelope.menu_choice("Orders", &json!("m-1"))),
            json!({ "target_type": "users", "target": ["kefu1"], "from": "T1_U1_D1",
                "msg": { "type": "txt", "msg": "Orders" },
                "ext": { "msgtype": { "choice": { "menuid": "m-1" } },
                         "weichat": { "visitor": { "userNickname": "Ada" } } } })
        );
        assert_eq!(
            parse(&envelope.enquiry(&json!(42), &json!("s-1"), 4, "")),
            json!({ "target_type": "users", "target": ["kefu1"], "from": "T1_U1_D1",
                "msg": { "type": "txt", "msg": "" },
                "ext": { "weichat": { "ctrlType": "enquiry",
                    "ctrlArgs": { "inviteId": 42, "serviceSessionId": "s-1", "summary": "4", "detail": "" },
                    "visitor": { "userNickname": "Ada" } } } })
        );
        assert_eq!(
            parse(&envelope.transfer_to_agent(&json!(7), &json!("s-1"))),
            json!({ "target_type": "users", "target": ["kefu1"], "from": "T1_U1_D1",
                "msg": { "type": "cmd", "action": "TransferToKf" },
                "ext": { "weichat": { "ctrlArgs": { "id": 7, "serviceSessionId": "s-1" },
                    "visitor": { "userNickname": "Ada" } } } })
        );
    }

    #[test]
    fn file_messages_carry_url_secret_size_and_length() {
        let info = visitor();
        let envelope = VisitorEnvelope {
            from: "T1_U1_D1",
            service_number: "kefu1",
            visitor: &info,
            queue: None,
        };
        let image = FileMessage {
            kind: FileKind::Image {
                size: Some((640, 480)),
            },
            url: "https://a1.easemob.com/o/a/chatfiles/u-1".into(),
            filename: "cat.png".into(),
            secret: Some(Secret::new("s3cr3t")),
            file_length: 1234,
        };
        assert_eq!(
            parse(&envelope.file(&image))["msg"],
            json!({ "type": "img", "url": "https://a1.easemob.com/o/a/chatfiles/u-1",
                "filename": "cat.png", "secret": "s3cr3t",
                "size": { "width": 640, "height": 480 }, "file_length": 1234 })
        );
        let file = FileMessage {
            kind: FileKind::File,
            secret: None,
            filename: "a.pdf".into(),
            ..image
        };
        assert_eq!(
            parse(&envelope.file(&file))["msg"],
            json!({ "type": "file", "url": "https://a1.easemob.com/o/a/chatfiles/u-1",
                "filename": "a.pdf", "file_length": 1234 })
        );
    }

    #[test]
    fn a_long_comment_is_cut_to_fit_5kb() {
        let info = visitor();
        let envelope = VisitorEnvelope {
            from: "T1_U1_D1",
            service_number: "kefu1",
            visitor: &info,
            queue: None,
        };
        let body = envelope.enquiry(&json!(1), &json!("s"), 5, &"好\"".repeat(2_000));
        assert!(body.len() <= MAX_BODY_BYTES, "{}", body.len());
        let detail = parse(&body)["ext"]["weichat"]["ctrlArgs"]["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(detail.len() > 3_000 && "好\"".repeat(2_000).starts_with(&detail));
    }
}
