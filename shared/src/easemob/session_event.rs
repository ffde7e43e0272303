//! Kefu's session events (docs/design.md §3 "Callback", session events):
//! what happened to the conversation itself — an agent took it, it waits
//! in a queue, it was handed on, it ended. They arrive on ordinary
//! messages as `ext.weichat.event {eventName, eventObj}`; Kefu's web widget
//! (`easemob/kefu-webim`, `channel.js` `_handleSystemEvent`) shows each as
//! a one-line notice, and so does the bridge.

use super::callback::{EventExt, Weichat};

/// One session event, by what it means for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Kefu opened a session (before anyone answers): not shown.
    Created,
    /// An agent took the conversation.
    Opened { agent: Option<String> },
    /// The conversation waits in a queue for an agent. The event carries no
    /// queue position: the widget polls Kefu's tenant API for it.
    WaitingForAgent,
    /// The conversation was handed to another agent.
    Transferred { agent: Option<String> },
    /// The agent (or Kefu) ended the conversation; the visitor's next
    /// message starts a new one.
    Closed,
    /// An event the bridge does not show (`ServiceSessionWillScheduleTimeoutEvent`…).
    Other(String),
}

impl SessionEvent {
    /// The event a message carries, if any.
    pub fn of(weichat: &Weichat) -> Option<Self> {
        weichat.event.as_ref().and_then(Self::from_ext)
    }

    fn from_ext(event: &EventExt) -> Option<Self> {
        let agent = || {
            let obj = &event.event_obj;
            [&obj.agent_user_nice_name, &obj.user_nickname]
                .into_iter()
                .map(|name| name.trim())
                .find(|name| !name.is_empty())
                .map(str::to_string)
        };
        Some(match event.event_name.trim() {
            "" => return None,
            "ServiceSessionCreatedEvent" => SessionEvent::Created,
            "ServiceSessionOpenedEvent" => SessionEvent::Opened { agent: agent() },
            "ServiceSessionTransferedToAgentQueueEvent" => SessionEvent::WaitingForAgent,
            "ServiceSessionTransferedEvent" => SessionEvent::Transferred { agent: agent() },
            "ServiceSessionClosedEvent" => SessionEvent::Closed,
            other => SessionEvent::Other(other.to_string()),
        })
    }

    /// Whether the customer is told about it.
    pub fn is_shown(&self) -> bool {
        !matches!(self, SessionEvent::Created | SessionEvent::Other(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::easemob::callback::Callback;
    use serde_json::{json, Value};

    fn event_of(ext: Value) -> Option<SessionEvent> {
        let callback = Callback::parse(json!({ "payload": { "bodies": [], "ext": ext } })).unwrap();
        SessionEvent::of(&callback.payload.ext.weichat)
    }

    fn named(name: &str, obj: Value) -> Option<SessionEvent> {
        event_of(json!({ "weichat": { "event": { "eventName": name, "eventObj": obj } } }))
    }

    #[test]
    fn each_kefu_event_by_name() {
        let alice = || Some("Alice Agent".to_string());
        assert_eq!(
            named("ServiceSessionCreatedEvent", json!({ "sessionId": "s" })),
            Some(SessionEvent::Created)
        );
        assert_eq!(
            named(
                "ServiceSessionOpenedEvent",
                json!({ "agentUserNiceName": " Alice Agent ", "userId": "u" })
            ),
            Some(SessionEvent::Opened { agent: alice() })
        );
        assert_eq!(
            named(
                "ServiceSessionTransferedToAgentQueueEvent",
                json!({ "queueName": "sales" })
            ),
            Some(SessionEvent::WaitingForAgent)
        );
        assert_eq!(
            named(
                "ServiceSessionTransferedEvent",
                json!({ "userNickname": "Alice Agent" })
            ),
            Some(SessionEvent::Transferred { agent: alice() })
        );
        assert_eq!(
            named("ServiceSessionClosedEvent", Value::Null),
            Some(SessionEvent::Closed)
        );
        assert_eq!(
            named("ServiceSessionWillScheduleTimeoutEvent", json!({})),
            Some(SessionEvent::Other(
                "ServiceSessionWillScheduleTimeoutEvent".into()
            ))
        );
    }

    #[test]
    fn the_widgets_field_wins_and_blank_names_are_none() {
        assert_eq!(
            named(
                "ServiceSessionOpenedEvent",
                json!({ "agentUserNiceName": "Widget", "userNickname": "Spec" })
            ),
            Some(SessionEvent::Opened {
                agent: Some("Widget".into())
            })
        );
        assert_eq!(
            named(
                "ServiceSessionOpenedEvent",
                json!({ "agentUserNiceName": " ", "userNickname": 7 })
            ),
            Some(SessionEvent::Opened {
                agent: Some("7".into())
            })
        );
        assert_eq!(
            named("ServiceSessionOpenedEvent", json!("not an object")),
            Some(SessionEvent::Opened { agent: None })
        );
    }

    #[test]
    fn no_event_or_an_odd_one_is_none() {
        assert_eq!(event_of(json!({})), None);
        assert_eq!(event_of(json!({ "weichat": { "event": "x" } })), None);
        assert_eq!(named(" ", json!({})), None);
        assert!(!SessionEvent::Created.is_shown());
        assert!(SessionEvent::Closed.is_shown());
    }
}
