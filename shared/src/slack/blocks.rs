//! Block Kit for Kefu's interactive messages: a robot menu as buttons, a
//! satisfaction invitation as 1–5 rating buttons (and a comment modal), a
//! transfer hint as a "Talk to a person" button — and each one's answered
//! form, which replaces the buttons so a question cannot be answered twice.
//!
//! Every builder returns the `text` fallback (notifications, screen readers,
//! clients without blocks) with the blocks. Slack's limits are applied
//! here: section text 3,000 characters, button text 75, 25 elements per
//! actions block, 50 blocks per message, block/action ids 255.

use serde_json::{json, Value};

use super::markup::{escape, SLACK_MESSAGE_MAX_CHARS};

/// `action_id` of menu item `n` (unique per item, as Slack requires).
pub const MENU_ITEM_ACTION_PREFIX: &str = "kefu_menu_item_";
/// `action_id` of rating `n`, 1–5.
pub const RATE_ACTION_PREFIX: &str = "kefu_rate_";
/// `action_id` of "Add a comment" on a satisfaction invitation.
pub const COMMENT_ACTION: &str = "kefu_rate_with_comment";
/// `action_id` of "Talk to a person".
pub const TRANSFER_ACTION: &str = "kefu_transfer";
/// `callback_id` of the comment modal.
pub const COMMENT_VIEW: &str = "kefu_rating_comment";
/// `block_id`s / `action_id`s of the modal's inputs.
pub const RATING_INPUT_BLOCK: &str = "kefu_rating";
pub const RATING_INPUT_ACTION: &str = "score";
pub const COMMENT_INPUT_BLOCK: &str = "kefu_comment";
pub const COMMENT_INPUT_ACTION: &str = "comment";

/// `block_id` prefixes; the invitation's and hint's actions blocks carry
/// their Kefu arguments after the prefix as compact JSON, so a click can be
/// answered even if the stored copy is gone.
pub const MENU_BLOCK_PREFIX: &str = "kefu_menu";
pub const ENQUIRY_BLOCK_PREFIX: &str = "kefu_enquiry";
pub const TRANSFER_BLOCK_PREFIX: &str = "kefu_transfer";

const SECTION_MAX_CHARS: usize = 3_000;
const BUTTON_MAX_CHARS: usize = 75;
const BUTTON_VALUE_MAX_CHARS: usize = 2_000;
const ELEMENTS_PER_ACTIONS_BLOCK: usize = 25;
/// Blocks left for buttons after the title (Slack allows 50 per message).
const MAX_ACTIONS_BLOCKS: usize = 45;
const BLOCK_ID_MAX_CHARS: usize = 255;
/// The modal's comment box: room for a real comment, and the rating
/// message still fits Easemob's 5 KB with the visitor card.
pub const COMMENT_MAX_CHARS: usize = 500;

/// What the Slack user sees for one Kefu prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    pub blocks: Value,
}

/// At most `max_chars`, ending in "…" when cut, and never inside one of
/// Slack's escapes (`&amp;`, `&lt;`, `&gt;`).
fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some(_) => {
            let mut cut: String = text.chars().take(max_chars - 1).collect();
            if let Some(amp) = cut.rfind('&') {
                if !cut[amp..].contains(';') && cut.len() - amp < 5 {
                    cut.truncate(amp);
                }
            }
            format!("{}…", cut.trim_end())
        }
    }
}

/// The `text` fallback, within what Slack shows of a message.
fn fallback(text: &str) -> String {
    truncate(text.trim(), SLACK_MESSAGE_MAX_CHARS)
}

/// `*Alice:* ` before the first line when posts cannot carry the agent's
/// name as their author (no `chat:write.customize`), as for text replies.
fn byline(agent: Option<&str>) -> String {
    agent
        .map(|name| format!("*{}:* ", escape(&name.replace('*', ""))))
        .unwrap_or_default()
}

fn section(block_id: &str, mrkdwn: &str) -> Value {
    json!({
        "type": "section",
        "block_id": block_id,
        "text": { "type": "mrkdwn", "text": truncate(mrkdwn, SECTION_MAX_CHARS) },
    })
}

fn context(mrkdwn: &str) -> Value {
    json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": truncate(mrkdwn, SECTION_MAX_CHARS) }] })
}

fn button(action_id: &str, text: &str, value: &str) -> Value {
    json!({
        "type": "button",
        "action_id": action_id,
        "text": { "type": "plain_text", "text": truncate(text, BUTTON_MAX_CHARS), "emoji": true },
        "value": truncate(value, BUTTON_VALUE_MAX_CHARS),
    })
}

/// `prefix` + compact JSON of `args` when that fits a block id, else the
/// prefix alone.
fn block_id_with(prefix: &str, args: &Value) -> String {
    let id = format!("{prefix}{args}");
    if id.chars().count() <= BLOCK_ID_MAX_CHARS {
        id
    } else {
        prefix.to_string()
    }
}

/// The Kefu arguments a `block_id` made by [`block_id_with`] carries.
pub fn block_id_args(block_id: &str, prefix: &str) -> Option<Value> {
    block_id
        .strip_prefix(prefix)
        .filter(|rest| rest.starts_with('{'))
        .and_then(|rest| serde_json::from_str(rest).ok())
}

/// A robot menu: the title, then one button per item (value = the item's
/// id). Items without a name are left out; Slack's 50-block limit caps a
/// menu at 1,125 items.
pub fn menu(agent: Option<&str>, title: &str, items: &[(String, String)]) -> Rendered {
    let items: Vec<&(String, String)> = items
        .iter()
        .filter(|(_, name)| !name.trim().is_empty())
        .collect();
    let title = title.trim();
    let mut blocks = vec![section(
        "kefu_menu_title",
        &format!("{}{}", byline(agent), escape(title)),
    )];
    for (chunk_index, chunk) in items
        .chunks(ELEMENTS_PER_ACTIONS_BLOCK)
        .take(MAX_ACTIONS_BLOCKS)
        .enumerate()
    {
        let elements: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, (id, name))| {
                let index = chunk_index * ELEMENTS_PER_ACTIONS_BLOCK + i;
                button(
                    &format!("{MENU_ITEM_ACTION_PREFIX}{index}"),
                    name.trim(),
                    id,
                )
            })
            .collect();
        blocks.push(json!({
            "type": "actions",
            "block_id": format!("{MENU_BLOCK_PREFIX}_{chunk_index}"),
            "elements": elements,
        }));
    }
    let mut lines = vec![format!("{}{}", byline(agent), escape(title))];
    lines.extend(
        items
            .iter()
            .map(|(_, name)| format!("• {}", escape(name.trim()))),
    );
    Rendered {
        text: fallback(&lines.join("\n")),
        blocks: Value::Array(blocks),
    }
}

/// "✅ You chose *Orders*"
pub fn menu_choice_line(chosen: &str) -> String {
    format!("✅ You chose *{}*", escape(&chosen.replace('*', "")))
}

/// "✅ Thanks — you rated 4/5 ⭐⭐⭐⭐"
pub fn rating_line(score: u8) -> String {
    let score = score.min(5);
    format!(
        "✅ Thanks — you rated {score}/5 {}",
        "⭐".repeat(score.into())
    )
}

pub const TRANSFER_DONE_LINE: &str =
    "✅ You asked to talk to a person. An agent will be with you shortly.";

/// A message's blocks with its buttons (and hints about them) taken out
/// and `line` added: the answered form of a question whose original is
/// known only from the click's payload.
pub fn answered_in_place(original: Option<&Value>, line: &str) -> Rendered {
    let mut kept: Vec<Value> = original
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("section"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    kept.push(section("kefu_answer", line));
    Rendered {
        text: line.trim_start_matches("✅ ").to_string(),
        blocks: Value::Array(kept),
    }
}

/// The menu once answered: its title and the choice, no buttons.
pub fn menu_answered(agent: Option<&str>, title: &str, chosen: &str) -> Rendered {
    let head = format!("{}{}", byline(agent), escape(title.trim()));
    let choice = menu_choice_line(chosen);
    Rendered {
        text: fallback(&format!("{head}\n{choice}")),
        blocks: json!([
            section("kefu_menu_title", &head),
            section("kefu_answer", &choice)
        ]),
    }
}

/// A satisfaction invitation: the agent's words (or a default question),
/// rating buttons 1–5 and "Add a comment…", which opens a modal.
pub fn enquiry(agent: Option<&str>, text: &str, kefu_args: &Value) -> Rendered {
    let question = match text.trim() {
        "" => "How would you rate this conversation?".to_string(),
        text => escape(text),
    };
    let head = format!("{}{question}", byline(agent));
    // As many stars as the score; screen readers get words instead.
    let mut elements: Vec<Value> = (1..=5)
        .map(|score| {
            let mut rating = button(
                &format!("{RATE_ACTION_PREFIX}{score}"),
                &"⭐".repeat(score),
                &score.to_string(),
            );
            rating["accessibility_label"] = json!(format!("Rate {score} out of 5"));
            rating
        })
        .collect();
    elements.push(button(COMMENT_ACTION, "Add a comment…", "comment"));
    Rendered {
        text: fallback(&format!("{head}\nRate from 1 (poor) to 5 (excellent).")),
        blocks: json!([
            section("kefu_enquiry_question", &head),
            {
                "type": "actions",
                "block_id": block_id_with(ENQUIRY_BLOCK_PREFIX, kefu_args),
                "elements": elements,
            },
            context("1 star = poor · 5 stars = excellent"),
        ]),
    }
}

/// The invitation once answered.
pub fn enquiry_answered(agent: Option<&str>, text: &str, score: u8, comment: &str) -> Rendered {
    let question = match text.trim() {
        "" => "How would you rate this conversation?".to_string(),
        text => escape(text),
    };
    let thanks = format!("Thanks — you rated {score}/5");
    let mut blocks = vec![
        section(
            "kefu_enquiry_question",
            &format!("{}{question}", byline(agent)),
        ),
        section("kefu_enquiry_answer", &rating_line(score)),
    ];
    let comment = comment.trim();
    if !comment.is_empty() {
        blocks.push(context(&format!(
            "Your comment: {}",
            escape(&truncate(comment, COMMENT_MAX_CHARS))
        )));
    }
    Rendered {
        text: thanks,
        blocks: Value::Array(blocks),
    }
}

/// The robot suggests a person: its words, and a button that asks Kefu to
/// transfer the conversation to an agent.
pub fn transfer_hint(agent: Option<&str>, text: &str, kefu_args: &Value) -> Rendered {
    let words = match text.trim() {
        "" => "Would you like to talk to a person?".to_string(),
        text => escape(text),
    };
    let head = format!("{}{words}", byline(agent));
    Rendered {
        text: fallback(&head),
        blocks: json!([
            section("kefu_transfer_text", &head),
            {
                "type": "actions",
                "block_id": block_id_with(TRANSFER_BLOCK_PREFIX, kefu_args),
                "elements": [button(TRANSFER_ACTION, "Talk to a person", "transfer")],
            },
        ]),
    }
}

/// The hint once answered.
pub fn transfer_answered(agent: Option<&str>, text: &str) -> Rendered {
    let words = match text.trim() {
        "" => "Would you like to talk to a person?".to_string(),
        text => escape(text),
    };
    Rendered {
        text: TRANSFER_DONE_LINE.trim_start_matches("✅ ").to_string(),
        blocks: json!([
            section("kefu_transfer_text", &format!("{}{words}", byline(agent))),
            context(TRANSFER_DONE_LINE),
        ]),
    }
}

/// `block_id` of a session notice.
pub const NOTICE_BLOCK: &str = "kefu_session_notice";

/// A quiet one-line notice about the conversation itself (an agent joined,
/// it ended…): a context block, small and grey, as Slack shows system
/// lines. `mrkdwn` is already escaped.
pub fn notice(mrkdwn: &str) -> Rendered {
    let mut block = context(mrkdwn);
    block["block_id"] = json!(NOTICE_BLOCK);
    Rendered {
        text: fallback(mrkdwn),
        blocks: json!([block]),
    }
}

/// The comment modal `views.open` shows: a required rating (preselected
/// when known) and an optional comment. `private_metadata` says which
/// message it answers (at most 3,000 characters).
pub fn comment_modal(private_metadata: &str) -> Value {
    let labels = [
        "5 — Excellent",
        "4 — Good",
        "3 — OK",
        "2 — Poor",
        "1 — Very poor",
    ];
    let options: Vec<Value> = labels
        .iter()
        .zip((1..=5).rev())
        .map(|(label, score)| {
            json!({ "text": { "type": "plain_text", "text": label }, "value": score.to_string() })
        })
        .collect();
    json!({
        "type": "modal",
        "callback_id": COMMENT_VIEW,
        "private_metadata": private_metadata,
        "title": { "type": "plain_text", "text": "Rate this service" },
        "submit": { "type": "plain_text", "text": "Send rating" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            {
                "type": "input",
                "block_id": RATING_INPUT_BLOCK,
                "label": { "type": "plain_text", "text": "Your rating" },
                "element": { "type": "radio_buttons", "action_id": RATING_INPUT_ACTION, "options": options },
            },
            {
                "type": "input",
                "block_id": COMMENT_INPUT_BLOCK,
                "optional": true,
                "label": { "type": "plain_text", "text": "Comment" },
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_INPUT_ACTION,
                    "multiline": true,
                    "max_length": COMMENT_MAX_CHARS,
                    "placeholder": { "type": "plain_text", "text": "What went well, what could be better?" },
                },
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("id-{i}"), format!("Item {i}")))
            .collect()
    }

    #[test]
    fn a_menu_is_a_title_and_one_button_per_item() {
        let rendered = menu(
            None,
            "How can we help?",
            &[
                ("1".into(), "Orders".into()),
                ("2".into(), " ".into()),
                ("3".into(), "Refunds & returns".into()),
            ],
        );
        assert_eq!(
            rendered.text,
            "How can we help?\n• Orders\n• Refunds &amp; returns"
        );
        assert_eq!(
            rendered.blocks,
            json!([
                { "type": "section", "block_id": "kefu_menu_title",
                  "text": { "type": "mrkdwn", "text": "How can we help?" } },
                { "type": "actions", "block_id": "kefu_menu_0", "elements": [
                    { "type": "button", "action_id": "kefu_menu_item_0", "value": "1",
                      "text": { "type": "plain_text", "text": "Orders", "emoji": true } },
                    { "type": "button", "action_id": "kefu_menu_item_1", "value": "3",
                      "text": { "type": "plain_text", "text": "Refunds & returns", "emoji": true } },
                ] },
            ])
        );
    }

    #[test]
    fn big_menus_respect_slack_limits() {
        let rendered = menu(Some("Bot*"), &"t".repeat(4_000), &items(60));
        let blocks = rendered.blocks.as_array().unwrap();
        assert_eq!(blocks.len(), 1 + 3);
        let title = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(title.starts_with("*Bot:* ttt"));
        assert_eq!(title.chars().count(), 3_000);
        let ids: Vec<&str> = blocks[1..]
            .iter()
            .flat_map(|b| b["elements"].as_array().unwrap())
            .map(|e| e["action_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 60);
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 60);
        let long = menu(None, "t", &[("x".into(), "n".repeat(100))]);
        let text = long.blocks[1]["elements"][0]["text"]["text"]
            .as_str()
            .unwrap();
        assert_eq!(text.chars().count(), 75);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn an_enquiry_has_five_ratings_a_comment_button_and_its_args() {
        let args = json!({ "inviteId": 42, "serviceSessionId": "s-1" });
        let rendered = enquiry(Some("Alice"), "", &args);
        let actions = &rendered.blocks[1];
        let block_id = actions["block_id"].as_str().unwrap();
        assert_eq!(block_id_args(block_id, ENQUIRY_BLOCK_PREFIX), Some(args));
        let values: Vec<&str> = actions["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["1", "2", "3", "4", "5", "comment"]);
        assert!(rendered.blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("*Alice:* How would you rate"));
        let answered = enquiry_answered(None, "", 4, "quick & kind");
        assert_eq!(answered.text, "Thanks — you rated 4/5");
        assert!(answered.blocks.to_string().contains("4/5 ⭐⭐⭐⭐\""));
        assert!(answered.blocks.to_string().contains("quick &amp; kind"));
        assert!(!answered.blocks.to_string().contains("\"actions\""));
    }

    #[test]
    fn long_texts_are_cut_outside_escapes_and_fallbacks_fit_a_message() {
        assert_eq!(truncate("a &amp; b", 5), "a…");
        assert_eq!(truncate("ab &amp; c", 9), "ab &amp;…");
        let huge = menu(None, &"&".repeat(2_000), &items(600));
        assert!((3_990..=SLACK_MESSAGE_MAX_CHARS).contains(&huge.text.chars().count()));
        assert!(huge.text.ends_with('…') && !huge.text.contains("&amp…"));
        let said = enquiry(None, &"<".repeat(5_000), &json!({}));
        assert!(said.text.chars().count() <= SLACK_MESSAGE_MAX_CHARS);
    }

    #[test]
    fn oversized_args_leave_the_block_id_plain() {
        let args = json!({ "inviteId": "x".repeat(300) });
        let rendered = transfer_hint(None, "", &args);
        assert_eq!(rendered.blocks[1]["block_id"], TRANSFER_BLOCK_PREFIX);
        assert_eq!(
            block_id_args(TRANSFER_BLOCK_PREFIX, TRANSFER_BLOCK_PREFIX),
            None
        );
    }

    #[test]
    fn the_modal_fits_slack_limits() {
        let modal = comment_modal("{}");
        assert!(modal["title"]["text"].as_str().unwrap().chars().count() <= 24);
        assert!(modal["submit"]["text"].as_str().unwrap().chars().count() <= 24);
        assert_eq!(
            modal["blocks"][0]["element"]["options"][0]["value"],
            json!("5")
        );
    }
}
