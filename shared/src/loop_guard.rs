//! Loop prevention (docs/design.md §2 "Loops"): the one place that decides whether a
//! Slack message is the bridge's own. The seed's warning — a bot reply that is
//! forwarded back to Kefu, answered, posted, forwarded… — is what this module
//! exists to make impossible, so every rule is checked on its own.

use crate::slack::events::MessageEvent;

/// Who the bridge is in one workspace.
#[derive(Debug, Clone, Copy)]
pub struct BridgeIdentity<'a> {
    pub bot_id: &'a str,
    pub bot_user_id: &'a str,
    /// `api_app_id` of the event envelope (the app receiving the event).
    pub app_id: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMessage {
    BotId,
    BotUserId,
    AppId,
    BotProfileAppId,
    BotMessageSubtype,
}

/// `Some(rule)` when the message was posted by the bridge (or by any bot,
/// for `bot_message`); such a message must never be forwarded.
pub fn own_message(message: &MessageEvent, me: BridgeIdentity<'_>) -> Option<OwnMessage> {
    if let Some(rule) = check_one(message, me) {
        return Some(rule);
    }
    // For `message_changed`, the edited message sits in `event.message`.
    message
        .message
        .as_deref()
        .and_then(|inner| check_one(inner, me))
}

fn check_one(message: &MessageEvent, me: BridgeIdentity<'_>) -> Option<OwnMessage> {
    let equals =
        |field: &Option<String>, ours: &str| !ours.is_empty() && field.as_deref() == Some(ours);
    if equals(&message.bot_id, me.bot_id) {
        return Some(OwnMessage::BotId);
    }
    if equals(&message.user, me.bot_user_id) {
        return Some(OwnMessage::BotUserId);
    }
    if equals(&message.app_id, me.app_id) {
        return Some(OwnMessage::AppId);
    }
    if message
        .bot_profile
        .as_ref()
        .is_some_and(|profile| equals(&profile.app_id, me.app_id))
    {
        return Some(OwnMessage::BotProfileAppId);
    }
    if message.subtype.as_deref() == Some("bot_message") {
        return Some(OwnMessage::BotMessageSubtype);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::events::BotProfile;

    const ME: BridgeIdentity<'static> = BridgeIdentity {
        bot_id: "B0BRIDGE",
        bot_user_id: "U0BRIDGE",
        app_id: "A0BRIDGE",
    };

    fn human() -> MessageEvent {
        MessageEvent {
            user: Some("U0HUMAN".into()),
            text: Some("hello".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_person_is_not_the_bridge() {
        assert_eq!(own_message(&human(), ME), None);
    }

    #[test]
    fn bot_id_rule() {
        let m = MessageEvent {
            bot_id: Some("B0BRIDGE".into()),
            ..human()
        };
        assert_eq!(own_message(&m, ME), Some(OwnMessage::BotId));
        let other_bot = MessageEvent {
            bot_id: Some("B0OTHER".into()),
            ..human()
        };
        assert_eq!(own_message(&other_bot, ME), None);
    }

    #[test]
    fn bot_user_id_rule() {
        let m = MessageEvent {
            user: Some("U0BRIDGE".into()),
            ..human()
        };
        assert_eq!(own_message(&m, ME), Some(OwnMessage::BotUserId));
    }

    #[test]
    fn app_id_rule() {
        let m = MessageEvent {
            app_id: Some("A0BRIDGE".into()),
            ..human()
        };
        assert_eq!(own_message(&m, ME), Some(OwnMessage::AppId));
    }

    #[test]
    fn bot_profile_app_id_rule() {
        let m = MessageEvent {
            bot_profile: Some(BotProfile {
                id: Some("B9".into()),
                app_id: Some("A0BRIDGE".into()),
            }),
            ..human()
        };
        assert_eq!(own_message(&m, ME), Some(OwnMessage::BotProfileAppId));
    }

    #[test]
    fn bot_message_subtype_rule() {
        let m = MessageEvent {
            subtype: Some("bot_message".into()),
            user: None,
            ..human()
        };
        assert_eq!(own_message(&m, ME), Some(OwnMessage::BotMessageSubtype));
    }

    #[test]
    fn message_changed_is_checked_inside() {
        let inner = MessageEvent {
            bot_id: Some("B0BRIDGE".into()),
            ..human()
        };
        let m = MessageEvent {
            subtype: Some("message_changed".into()),
            user: None,
            message: Some(Box::new(inner)),
            ..Default::default()
        };
        assert_eq!(own_message(&m, ME), Some(OwnMessage::BotId));
        let inner = MessageEvent {
            app_id: Some("A0BRIDGE".into()),
            ..human()
        };
        let m = MessageEvent {
            subtype: Some("message_changed".into()),
            message: Some(Box::new(inner)),
            ..Default::default()
        };
        assert_eq!(own_message(&m, ME), Some(OwnMessage::AppId));
    }

    #[test]
    fn empty_identity_fields_never_match_absent_ones() {
        let me = BridgeIdentity {
            bot_id: "",
            bot_user_id: "",
            app_id: "",
        };
        assert_eq!(own_message(&MessageEvent::default(), me), None);
    }
}
