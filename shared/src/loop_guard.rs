//! Loop prevention (docs/design.md §2 "Loops"): the one place that decides
//! whether a Slack message is a visitor's at all. The seed's warning — a bot
//! reply that is forwarded back to Kefu, answered, posted, forwarded… — is
//! what this module exists to make impossible, so every rule is checked on
//! its own. Two kinds of message are never forwarded: the bridge's own posts,
//! and any other bot's or app's (a stand-up bot, a Workflow, an
//! auto-responder would otherwise answer a Kefu robot forever).

use crate::slack::events::MessageEvent;

/// Who the bridge is in one workspace.
#[derive(Debug, Clone, Copy)]
pub struct BridgeIdentity<'a> {
    pub bot_id: &'a str,
    pub bot_user_id: &'a str,
    /// `api_app_id` of the event envelope (the app receiving the event).
    pub app_id: &'a str,
}

/// Why a message is never forwarded: the log line's outcome and detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotForwarded {
    /// Posted by the bridge itself (or a legacy `bot_message`).
    Own(OwnMessage),
    /// Posted by another bot or app.
    OtherBot(BotMarker),
}

impl NotForwarded {
    /// The outcome in the handler's log line: own posts and other bots'
    /// posts are told apart, so a noisy neighbour bot is visible as such.
    pub fn outcome(self) -> &'static str {
        match self {
            NotForwarded::Own(_) => "own_message_not_forwarded",
            NotForwarded::OtherBot(_) => "other_bot_not_forwarded",
        }
    }

    /// The rule that matched, for the log line's detail.
    pub fn rule(self) -> String {
        match self {
            NotForwarded::Own(rule) => format!("{rule:?}"),
            NotForwarded::OtherBot(marker) => format!("{marker:?}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMessage {
    BotId,
    BotUserId,
    AppId,
    BotProfileAppId,
    BotMessageSubtype,
}

/// The fields only a bot's or an app's post carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotMarker {
    BotId,
    AppId,
    BotProfile,
}

/// `Some(reason)` when the message must never be forwarded to Kefu: the
/// bridge's own post first (so its log reason stays its own), then any
/// other bot's or app's. For `message_changed`, the edited message in
/// `event.message` is checked as well.
pub fn not_forwarded(message: &MessageEvent, me: BridgeIdentity<'_>) -> Option<NotForwarded> {
    if let Some(rule) = own_message(message, me) {
        return Some(NotForwarded::Own(rule));
    }
    let inner = message.message.as_deref();
    bot_marker(message)
        .or_else(|| inner.and_then(bot_marker))
        .map(NotForwarded::OtherBot)
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

/// A person's message carries none of these, whatever their value: a
/// present field is enough (fail closed on an empty or odd one).
fn bot_marker(message: &MessageEvent) -> Option<BotMarker> {
    if message.bot_id.is_some() {
        Some(BotMarker::BotId)
    } else if message.app_id.is_some() {
        Some(BotMarker::AppId)
    } else if message.bot_profile.is_some() {
        Some(BotMarker::BotProfile)
    } else {
        None
    }
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
        assert_eq!(
            not_forwarded(&other_bot, ME),
            Some(NotForwarded::OtherBot(BotMarker::BotId))
        );
        assert_eq!(
            not_forwarded(&m, ME),
            Some(NotForwarded::Own(OwnMessage::BotId))
        );
    }

    #[test]
    fn any_other_bot_or_app_marker_is_never_forwarded() {
        let shapes = [
            (
                MessageEvent {
                    bot_id: Some(String::new()),
                    ..human()
                },
                BotMarker::BotId,
            ),
            (
                MessageEvent {
                    app_id: Some("A0OTHER".into()),
                    ..human()
                },
                BotMarker::AppId,
            ),
            (
                MessageEvent {
                    bot_profile: Some(BotProfile::default()),
                    ..human()
                },
                BotMarker::BotProfile,
            ),
        ];
        for (message, marker) in shapes {
            let expected = Some(NotForwarded::OtherBot(marker));
            assert_eq!(not_forwarded(&message, ME), expected, "{message:?}");
            let edited = MessageEvent {
                subtype: Some("message_changed".into()),
                message: Some(Box::new(message)),
                ..Default::default()
            };
            assert_eq!(not_forwarded(&edited, ME), expected, "edited");
        }
        assert_eq!(not_forwarded(&human(), ME), None);
        assert_eq!(
            NotForwarded::OtherBot(BotMarker::AppId).outcome(),
            "other_bot_not_forwarded"
        );
        assert_eq!(
            NotForwarded::Own(OwnMessage::AppId).outcome(),
            "own_message_not_forwarded"
        );
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
