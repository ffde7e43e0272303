//! Slack's message markup, both ways (docs/design.md §2 "Slack markup to plain text",
//! `chat.postMessage` escaping and splitting).

use std::collections::HashMap;

/// Slack recommends at most 4,000 characters per message.
pub const SLACK_MESSAGE_MAX_CHARS: usize = 4_000;

/// User ids mentioned as `<@U…>` (or `<@U…|name>`), in order, without repeats.
pub fn mentioned_users(text: &str) -> Vec<String> {
    let mut users = Vec::new();
    for segment in angle_segments(text) {
        if let Segment::Tag(inner) = segment {
            if let Some(rest) = inner.strip_prefix('@') {
                let id = rest.split('|').next().unwrap_or(rest);
                if !id.is_empty() && !users.iter().any(|u| u == id) {
                    users.push(id.to_string());
                }
            }
        }
    }
    users
}

/// Slack markup → what an agent reads. `names` maps user ids to display
/// names (resolved by the caller through `users.info`, cached).
pub fn to_plain_text(text: &str, names: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    for segment in angle_segments(text) {
        match segment {
            Segment::Text(t) => out.push_str(&unescape(t)),
            Segment::Tag(inner) => out.push_str(&render_tag(inner, names)),
        }
    }
    out
}

/// Escapes the three characters Slack reserves: `&`, `<`, `>`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

pub fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Plain text → escaped Slack message parts of at most 4,000 characters each,
/// cut at whitespace (never inside an escape, since each part is escaped
/// after the cut).
pub fn escaped_parts(text: &str, max_chars: usize) -> Vec<String> {
    split_by_cost(text, max_chars, |c| match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    })
    .into_iter()
    .map(|part| escape(&part))
    .collect()
}

enum Segment<'a> {
    Text(&'a str),
    Tag(&'a str),
}

fn angle_segments(text: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        if open > 0 {
            segments.push(Segment::Text(&rest[..open]));
        }
        segments.push(Segment::Tag(&rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest));
    }
    segments
}

fn render_tag(inner: &str, names: &HashMap<String, String>) -> String {
    let (target, label) = match inner.split_once('|') {
        Some((target, label)) => (target, Some(label)),
        None => (inner, None),
    };
    let label = label.map(unescape);
    if let Some(user) = target.strip_prefix('@') {
        let name = names
            .get(user)
            .cloned()
            .or(label)
            .unwrap_or_else(|| user.to_string());
        return format!("@{}", name.trim_start_matches('@'));
    }
    if let Some(channel) = target.strip_prefix('#') {
        return format!("#{}", label.unwrap_or_else(|| channel.to_string()));
    }
    if let Some(special) = target.strip_prefix('!') {
        return match special {
            "here" | "channel" | "everyone" => format!("@{special}"),
            // `<!subteam^S123|@team>`, `<!date^…|fallback>`: the label is the text.
            _ => label.unwrap_or_else(|| format!("@{special}")),
        };
    }
    let url = unescape(target);
    match label {
        Some(label) if label == url || url.strip_prefix("mailto:") == Some(label.as_str()) => label,
        Some(label) => format!("{label} ({url})"),
        None => url,
    }
}

/// Splits `text` into ordered parts whose summed `cost` is at most `limit`.
///
/// Cuts at the last whitespace that fits, dropping only that whitespace run;
/// where a part has no whitespace (Chinese text), cuts at a character
/// boundary that is not inside an ASCII word; a single word longer than the
/// limit is cut where it must be. Nothing else is added or dropped.
pub fn split_by_cost(text: &str, limit: usize, cost: impl Fn(char) -> usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let mut spent = 0usize;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            spent += cost(c);
            if spent > limit {
                end = i;
                break;
            }
        }
        if end == rest.len() {
            if !rest.is_empty() || parts.is_empty() {
                parts.push(rest.to_string());
            }
            return parts;
        }
        if end == 0 {
            // One character costs more than the limit: it still has to go.
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (chunk_end, next_start) = cut_point(rest, end);
        parts.push(rest[..chunk_end].to_string());
        rest = &rest[next_start..];
    }
}

/// Where to cut `text` given that `text[..end]` is the most that fits:
/// returns (end of this part, start of the next).
fn cut_point(text: &str, end: usize) -> (usize, usize) {
    // The last whitespace whose run starts after position 0 and at or before `end`.
    let window = &text[..end];
    let next_char_is_space = text[end..].chars().next().is_some_and(char::is_whitespace);
    let candidate = if next_char_is_space {
        Some(end)
    } else {
        window
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, _)| i)
    };
    if let Some(pos) = candidate {
        let run_start = text[..pos].trim_end().len();
        if run_start > 0 {
            let after = &text[pos..];
            let run_end = pos + (after.len() - after.trim_start().len());
            return (run_start, run_end);
        }
    }
    // No whitespace: the last boundary not between two ASCII word characters.
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut boundary = None;
    let mut prev: Option<char> = None;
    for (i, c) in window.char_indices() {
        if i > 0 && !(prev.is_some_and(is_word) && is_word(c)) {
            boundary = Some(i);
        }
        prev = Some(c);
    }
    if let (Some(last), Some(next)) = (prev, text[end..].chars().next()) {
        if !(is_word(last) && is_word(next)) {
            boundary = Some(end);
        }
    }
    let cut = boundary.unwrap_or(end);
    (cut, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HashMap<String, String> {
        HashMap::from([("U123".to_string(), "Ada".to_string())])
    }

    #[test]
    fn entities_links_mentions_and_specials_become_readable() {
        let text = "a &amp; b &lt;tag&gt; <https://x.io/a?b=1&amp;c=2|docs> <https://y.io> \
                    <@U123> <@U999|bob> <#C1|general> <!here> <!channel> <!everyone> \
                    <mailto:a@b.co|a@b.co> <!subteam^S1|@ops>";
        assert_eq!(
            to_plain_text(text, &names()),
            "a & b <tag> docs (https://x.io/a?b=1&c=2) https://y.io @Ada @bob #general \
             @here @channel @everyone a@b.co @ops"
        );
    }

    #[test]
    fn unknown_mention_falls_back_to_the_id() {
        assert_eq!(to_plain_text("hi <@U777>", &HashMap::new()), "hi @U777");
        assert_eq!(mentioned_users("<@U1> <@U2|x> <@U1>"), vec!["U1", "U2"]);
    }

    #[test]
    fn unclosed_angle_bracket_is_left_alone() {
        assert_eq!(to_plain_text("a < b", &HashMap::new()), "a < b");
    }

    #[test]
    fn escape_round_trips() {
        let text = "1 < 2 && 3 > 2";
        assert_eq!(escape(text), "1 &lt; 2 &amp;&amp; 3 &gt; 2");
        assert_eq!(unescape(&escape(text)), text);
    }

    #[test]
    fn split_cuts_at_whitespace_and_drops_only_it() {
        let parts = split_by_cost("aaa bbb ccc", 7, |_| 1);
        assert_eq!(parts, vec!["aaa bbb", "ccc"]);
        let parts = split_by_cost("aaa  bbb", 4, |_| 1);
        assert_eq!(parts, vec!["aaa", "bbb"]);
    }

    #[test]
    fn split_of_cjk_text_cuts_at_characters() {
        let text = "你好世界你好世界";
        let parts = split_by_cost(text, 9, |c| c.len_utf8());
        assert_eq!(parts, vec!["你好世", "界你好", "世界"]);
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn split_does_not_cut_inside_an_ascii_word_when_it_can_avoid_it() {
        let parts = split_by_cost("你好abc世界", 8, |c| c.len_utf8());
        // "你好ab" would fit 8 bytes but cuts "abc"; the cut goes before it.
        assert_eq!(parts, vec!["你好", "abc世", "界"]);
    }

    #[test]
    fn a_word_longer_than_the_limit_is_cut_where_it_must() {
        let parts = split_by_cost("abcdefghij", 4, |_| 1);
        assert_eq!(parts, vec!["abcd", "efgh", "ij"]);
    }

    #[test]
    fn escaped_parts_never_split_an_escape() {
        let text = "&".repeat(10);
        let parts = escaped_parts(&text, 12);
        assert!(parts.iter().all(|p| p.len() <= 12 && p.len() % 5 == 0));
        assert_eq!(unescape(&parts.concat()), text);
    }

    #[test]
    fn empty_text_is_one_empty_part() {
        assert_eq!(split_by_cost("", 10, |_| 1), vec![String::new()]);
    }
}
