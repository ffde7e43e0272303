//! Interactivity payloads (`POST /slack/interactivity`): a form body whose
//! `payload` field is JSON, tagged by `type`. The bridge answers
//! `block_actions` (button clicks) and `view_submission` (the comment
//! modal); anything else parses as `Other` and gets 200.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Interaction {
    BlockActions(Box<BlockActions>),
    ViewSubmission(Box<ViewSubmission>),
    #[serde(other)]
    Other,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("form body has no payload field")]
    Missing,
    #[error("payload is not an interaction: {0}")]
    Malformed(String),
}

impl Interaction {
    /// From the raw `application/x-www-form-urlencoded` body.
    pub fn from_form(body: &[u8]) -> Result<Self, PayloadError> {
        let payload = url::form_urlencoded::parse(body)
            .find(|(name, _)| name == "payload")
            .map(|(_, value)| value.into_owned())
            .ok_or(PayloadError::Missing)?;
        serde_json::from_str(&payload).map_err(|e| PayloadError::Malformed(e.to_string()))
    }
}

/// `{ "id": "…" }` objects (`user`, `team`, `channel`, `enterprise`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IdRef {
    #[serde(default)]
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BlockActions {
    #[serde(default)]
    pub user: IdRef,
    #[serde(default)]
    pub team: Option<IdRef>,
    #[serde(default)]
    pub enterprise: Option<IdRef>,
    #[serde(default)]
    pub is_enterprise_install: bool,
    #[serde(default)]
    pub api_app_id: String,
    #[serde(default)]
    pub channel: Option<IdRef>,
    /// The message the buttons are on (absent for modal actions).
    #[serde(default)]
    pub message: Option<Value>,
    /// `{type: "message", message_ts, channel_id, thread_ts?, is_ephemeral}`.
    #[serde(default)]
    pub container: Value,
    #[serde(default)]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub trigger_id: Option<String>,
    #[serde(default)]
    pub response_url: Option<String>,
}

impl BlockActions {
    pub fn channel_id(&self) -> Option<&str> {
        self.channel
            .as_ref()
            .map(|c| c.id.as_str())
            .filter(|id| !id.is_empty())
            .or_else(|| self.container.get("channel_id").and_then(Value::as_str))
    }

    /// The `ts` of the message clicked in.
    pub fn message_ts(&self) -> Option<&str> {
        self.message
            .as_ref()
            .and_then(|m| m.get("ts"))
            .and_then(Value::as_str)
            .or_else(|| self.container.get("message_ts").and_then(Value::as_str))
    }

    /// The thread the message is in, if any.
    pub fn thread_ts(&self) -> Option<&str> {
        self.message
            .as_ref()
            .and_then(|m| m.get("thread_ts"))
            .and_then(Value::as_str)
            .or_else(|| self.container.get("thread_ts").and_then(Value::as_str))
    }

    /// The text of the clicked message's button with `action_id`, when
    /// the payload includes the message's blocks.
    pub fn button_text_in_message(&self, action_id: &str) -> Option<String> {
        let blocks = self.message.as_ref()?.get("blocks")?.as_array()?;
        blocks
            .iter()
            .filter_map(|block| block.get("elements").and_then(Value::as_array))
            .flatten()
            .find(|element| element.get("action_id").and_then(Value::as_str) == Some(action_id))
            .and_then(|element| element.pointer("/text/text"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Action {
    #[serde(default)]
    pub action_id: String,
    #[serde(default)]
    pub block_id: String,
    #[serde(default)]
    pub value: Option<String>,
    /// A button's text: `{type: "plain_text", text}`.
    #[serde(default)]
    pub text: Option<Value>,
}

impl Action {
    pub fn text(&self) -> Option<&str> {
        self.text
            .as_ref()
            .and_then(|t| t.get("text"))
            .and_then(Value::as_str)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ViewSubmission {
    #[serde(default)]
    pub user: IdRef,
    #[serde(default)]
    pub team: Option<IdRef>,
    #[serde(default)]
    pub enterprise: Option<IdRef>,
    #[serde(default)]
    pub is_enterprise_install: bool,
    #[serde(default)]
    pub view: View,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct View {
    #[serde(default)]
    pub callback_id: String,
    #[serde(default)]
    pub private_metadata: String,
    /// `{values: {block_id: {action_id: {type, value | selected_option}}}}`.
    #[serde(default)]
    pub state: Value,
}

impl View {
    /// An input's value: `value` for text inputs, `selected_option.value`
    /// for selects and radio buttons.
    pub fn input(&self, block_id: &str, action_id: &str) -> Option<&str> {
        let input = self.state.get("values")?.get(block_id)?.get(action_id)?;
        input.get("value").and_then(Value::as_str).or_else(|| {
            input
                .pointer("/selected_option/value")
                .and_then(Value::as_str)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(payload: &Value) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    #[test]
    fn block_actions_parse_from_the_form_body() {
        let body = form(&json!({
            "type": "block_actions", "user": { "id": "U1", "username": "ada" },
            "team": { "id": "T1", "domain": "acme" }, "api_app_id": "A1",
            "container": { "type": "message", "message_ts": "1.2", "channel_id": "D1", "is_ephemeral": false },
            "channel": { "id": "D1", "name": "directmessage" },
            "message": { "ts": "1.2", "blocks": [{ "type": "actions", "elements": [
                { "type": "button", "action_id": "a0", "text": { "type": "plain_text", "text": "Orders" }, "value": "1" }
            ] }] },
            "trigger_id": "123.456.abc", "response_url": "https://hooks.slack.com/actions/x",
            "actions": [{ "type": "button", "action_id": "a0", "block_id": "b", "value": "1",
                          "text": { "type": "plain_text", "text": "Orders" }, "action_ts": "1.3" }]
        }));
        let Interaction::BlockActions(actions) = Interaction::from_form(&body).unwrap() else {
            panic!("not block_actions")
        };
        assert_eq!(actions.user.id, "U1");
        assert_eq!(actions.channel_id(), Some("D1"));
        assert_eq!(actions.message_ts(), Some("1.2"));
        assert_eq!(actions.actions[0].text(), Some("Orders"));
        assert_eq!(
            actions.button_text_in_message("a0").as_deref(),
            Some("Orders")
        );
    }

    #[test]
    fn the_container_stands_in_for_a_missing_message() {
        let actions: BlockActions = serde_json::from_value(json!({
            "container": { "message_ts": "9.9", "channel_id": "C1", "thread_ts": "9.0" }
        }))
        .unwrap();
        assert_eq!(actions.channel_id(), Some("C1"));
        assert_eq!(actions.message_ts(), Some("9.9"));
        assert_eq!(actions.thread_ts(), Some("9.0"));
    }

    #[test]
    fn view_inputs_are_read_by_block_and_action() {
        let body = form(&json!({
            "type": "view_submission", "user": { "id": "U1" }, "team": { "id": "T1" },
            "view": { "callback_id": "cb", "private_metadata": "{}", "state": { "values": {
                "r": { "score": { "type": "radio_buttons", "selected_option": { "value": "4" } } },
                "c": { "comment": { "type": "plain_text_input", "value": "nice" } }
            } } }
        }));
        let Interaction::ViewSubmission(submission) = Interaction::from_form(&body).unwrap() else {
            panic!("not view_submission")
        };
        assert_eq!(submission.view.input("r", "score"), Some("4"));
        assert_eq!(submission.view.input("c", "comment"), Some("nice"));
        assert_eq!(submission.view.input("c", "other"), None);
    }

    #[test]
    fn unknown_types_and_bad_bodies() {
        let other = form(&json!({ "type": "shortcut", "callback_id": "x" }));
        assert!(matches!(
            Interaction::from_form(&other).unwrap(),
            Interaction::Other
        ));
        assert_eq!(
            Interaction::from_form(b"x=1").unwrap_err(),
            PayloadError::Missing
        );
        assert!(matches!(
            Interaction::from_form(b"payload=%7Bnot").unwrap_err(),
            PayloadError::Malformed(_)
        ));
    }
}
