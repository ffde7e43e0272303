//! A small HTML renderer of the bridge's Block Kit, in Slack's look, for
//! the README pictures (`docs/kefu-menu-and-survey.png`,
//! `docs/kefu-conversation.png`). It renders the real builders' output
//! (`Prompt::render`, `render_answered`, session notices, reply posts), so
//! the pictures show what a Slack user gets. Only what the bridge uses is
//! drawn: sections and context with Slack's mrkdwn (`*bold*`, `_italic_`,
//! entities, line breaks), and actions blocks of buttons.

use serde_json::Value;

/// One message in the preview.
pub struct PreviewMessage<'a> {
    pub author: &'a str,
    /// Shown after the name, like Slack's `APP` tag for bots.
    pub is_app: bool,
    pub time: &'a str,
    /// A plain-text message (the visitor's), or Block Kit.
    pub text: Option<&'a str>,
    pub blocks: Option<&'a Value>,
    /// A caption above the message, e.g. "after Ada clicks 4".
    pub caption: Option<&'a str>,
}

/// Slack mrkdwn (already Slack-escaped: `&amp;` `&lt;` `&gt;`) → HTML.
pub fn mrkdwn(text: &str) -> String {
    // Slack's three entities are HTML's too; anything else that HTML
    // would read as markup is escaped.
    let escaped = text.replace('"', "&quot;");
    let mut out = String::new();
    let mut bold = false;
    let mut italic = false;
    let chars: Vec<char> = escaped.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        let opens = |next: Option<char>| next.is_some_and(|n| !n.is_whitespace());
        let closes = |prev: Option<char>| prev.is_some_and(|p| !p.is_whitespace());
        match c {
            '*' if !bold && opens(next) && chars[i + 1..].contains(&'*') => {
                bold = true;
                out.push_str("<b>");
            }
            '*' if bold && closes(prev) => {
                bold = false;
                out.push_str("</b>");
            }
            '_' if !italic
                && opens(next)
                && prev.is_none_or(|p| !p.is_alphanumeric())
                && chars[i + 1..].contains(&'_') =>
            {
                italic = true;
                out.push_str("<i>");
            }
            '_' if italic && closes(prev) => {
                italic = false;
                out.push_str("</i>");
            }
            '\n' => out.push_str("<br>"),
            '<' => out.push_str("&lt;"),
            c => out.push(c),
        }
    }
    if italic {
        out.push_str("</i>");
    }
    if bold {
        out.push_str("</b>");
    }
    out
}

fn plain(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn block_html(block: &Value) -> String {
    match block["type"].as_str() {
        Some("section") => format!(
            "<div class=\"section\">{}</div>",
            mrkdwn(block["text"]["text"].as_str().unwrap_or(""))
        ),
        Some("context") => {
            let parts: Vec<String> = block["elements"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| mrkdwn(e["text"].as_str().unwrap_or("")))
                .collect();
            format!("<div class=\"context\">{}</div>", parts.join(" "))
        }
        Some("actions") => {
            let buttons: Vec<String> = block["elements"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let style = match e["style"].as_str() {
                        Some("primary") => " primary",
                        Some("danger") => " danger",
                        _ => "",
                    };
                    format!(
                        "<button class=\"btn{style}\">{}</button>",
                        plain(e["text"]["text"].as_str().unwrap_or(""))
                    )
                })
                .collect();
            format!("<div class=\"actions\">{}</div>", buttons.join(""))
        }
        _ => String::new(),
    }
}

fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .collect()
}

/// A whole page: a channel header and the messages.
pub fn page(document_title: &str, channel_title: &str, messages: &[PreviewMessage<'_>]) -> String {
    let mut body = String::new();
    for message in messages {
        if let Some(caption) = message.caption {
            body.push_str(&format!(
                "<div class=\"divider\"><span>{}</span></div>",
                plain(caption)
            ));
        }
        let content = match (message.blocks, message.text) {
            (Some(blocks), _) => blocks
                .as_array()
                .into_iter()
                .flatten()
                .map(block_html)
                .collect::<String>(),
            (None, Some(text)) => format!("<div class=\"section\">{}</div>", mrkdwn(text)),
            (None, None) => String::new(),
        };
        let avatar_class = if message.is_app {
            "avatar app"
        } else {
            "avatar"
        };
        body.push_str(&format!(
            "<div class=\"message\"><div class=\"{avatar_class}\">{}</div><div class=\"content\">\
             <div class=\"meta\"><span class=\"author\">{}</span>{}<span class=\"time\">{}</span></div>{content}</div></div>",
            plain(&initials(message.author)),
            plain(message.author),
            if message.is_app { "<span class=\"tag\">APP</span>" } else { "" },
            plain(message.time),
        ));
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{}</title>
<style>
  * {{ box-sizing: border-box; }}
  body {{ margin: 0; background: #fff; color: #1d1c1d;
         font: 15px/1.46668 Lato, "Slack-Lato", "Helvetica Neue", Helvetica, Arial, "Noto Color Emoji", sans-serif; }}
  header {{ height: 49px; padding: 0 20px; border-bottom: 1px solid #e2e2e2; display: flex; align-items: center;
           font-weight: 900; font-size: 18px; }}
  header small {{ font-weight: 400; color: #616061; font-size: 13px; margin-left: 10px; }}
  main {{ padding: 8px 0 16px; }}
  .message {{ display: flex; padding: 8px 20px; }}
  .message:hover {{ background: #f8f8f8; }}
  .avatar {{ flex: 0 0 36px; height: 36px; border-radius: 6px; margin-right: 8px; background: #e8912d;
            color: #fff; font-weight: 700; font-size: 14px; display: flex; align-items: center; justify-content: center; }}
  .avatar.app {{ background: #2eb67d; }}
  .content {{ min-width: 0; flex: 1; }}
  .meta {{ line-height: 1.2; margin-bottom: 2px; }}
  .author {{ font-weight: 900; }}
  .tag {{ background: rgba(29,28,29,.13); color: rgba(29,28,29,.7); font-size: 10px; font-weight: 700;
         border-radius: 2px; padding: 1px 3px; margin-left: 4px; vertical-align: 1px; }}
  .time {{ color: #616061; font-size: 12px; margin-left: 6px; }}
  .section {{ margin: 2px 0 4px; word-wrap: break-word; }}
  .context {{ color: #616061; font-size: 13px; margin: 4px 0; }}
  .actions {{ display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0 4px; }}
  .btn {{ font: inherit; font-size: 15px; font-weight: 700; height: 36px; padding: 0 12px; min-width: 56px;
         background: #fff; color: #1d1c1d; border: 1px solid rgba(29,28,29,.3); border-radius: 4px;
         box-shadow: 0 1px 3px rgba(0,0,0,.08); cursor: pointer; white-space: nowrap; }}
  .btn.primary {{ background: #007a5a; color: #fff; border-color: #007a5a; }}
  .divider {{ display: flex; align-items: center; margin: 10px 20px 2px; color: #616061; font-size: 12px; }}
  .divider::before, .divider::after {{ content: ""; flex: 1; border-top: 1px solid #e2e2e2; }}
  .divider span {{ padding: 2px 12px; border: 1px solid #e2e2e2; border-radius: 12px; font-weight: 700; }}
</style></head>
<body><header>{}<small>direct message with the Kefu Support app</small></header>
<main>{body}</main></body></html>
"#,
        plain(document_title),
        plain(channel_title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrkdwn_bold_italic_entities_and_breaks() {
        assert_eq!(
            mrkdwn("*Alice:* a &amp; b\n_soft_ 5*3"),
            "<b>Alice:</b> a &amp; b<br><i>soft</i> 5*3"
        );
        assert_eq!(mrkdwn("snake_case_name"), "snake_case_name");
    }
}
