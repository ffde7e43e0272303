//! The HTML the install flow shows: the "Add to Slack" page, the success
//! page and one page per failure. Self-contained (inline CSS and SVG, no
//! external assets, so a strict CSP holds), and every value that comes from
//! outside is escaped with [`escape_html`].

use crate::http_types::HttpResponse;

/// The app's name as the pages show it (the manifest's `display_information.name`).
pub const APP_NAME: &str = "Kefu Support";

/// Escapes text for HTML element content and double- or single-quoted
/// attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Every page answer: HTML, never cached (each carries a one-time state or
/// a result), never framed, no third-party requests, no Referer (the
/// callback URL holds the code and state).
pub fn response(status: u16, html: String) -> HttpResponse {
    HttpResponse::html(status, html)
        .with_header("cache-control", "no-store")
        .with_header("x-content-type-options", "nosniff")
        .with_header("referrer-policy", "no-referrer")
        .with_header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
}

/// The "Add to Slack" page. `authorize_url` is the full
/// `https://slack.com/oauth/v2/authorize?…` link.
pub fn install_page(authorize_url: &str) -> String {
    let body = format!(
        r#"<main class="card">
  <p class="eyebrow">{app}</p>
  <h1>Talk to our support team from Slack</h1>
  <p class="lead">Add {app} to your Slack workspace and chat with our customer-service
  agents without leaving Slack. Write to the app in a direct message or in a
  channel you invite it to; an agent&#39;s reply comes back in the same conversation.</p>
  <p class="action">
    <a class="add-to-slack" href="{href}">{logo}<span>Add to Slack</span></a>
  </p>
  <h2>What the app will be able to do</h2>
  <ul class="perms">
    <li>Read messages in its direct messages and in channels it is added to, to pass them to an agent</li>
    <li>Post the agent&#39;s replies, showing the agent&#39;s name and picture</li>
    <li>See the names and email addresses of the people who write, and the workspace name, so the agent knows who they are talking to</li>
    <li>Read and share files sent in those conversations</li>
  </ul>
  <p class="note">You will confirm this on Slack&#39;s own page. The link is valid for
  10&nbsp;minutes; reload this page if it has expired.</p>
</main>"#,
        app = APP_NAME,
        href = escape_html(authorize_url),
        logo = SLACK_LOGO,
    );
    document(&format!("Add {APP_NAME} to Slack"), &body)
}

/// The page after a successful install: opens the app in Slack (desktop
/// deep link), with a link to Slack on the web as fallback.
pub fn success_page(workspace_name: &str, team_id: &str, app_id: &str) -> String {
    let deep_link = format!("slack://app?team={team_id}&id={app_id}");
    let web_link = format!("https://slack.com/app_redirect?app={app_id}&team={team_id}");
    let body = format!(
        r#"<main class="card">
  <div class="icon ok" aria-hidden="true">{check}</div>
  <h1>{app} is installed</h1>
  <p class="lead">{app} is now part of <strong>{workspace}</strong>. Send it a direct
  message, or invite it to a channel with <code>/invite @{app}</code>, and one of
  our agents will answer right there.</p>
  <p class="action">
    <a class="button primary" href="{deep}">Open Slack</a>
    <a class="button" href="{web}">Open in the browser</a>
  </p>
  <p class="note">You can close this tab.</p>
</main>"#,
        check = CHECK_ICON,
        app = APP_NAME,
        workspace = escape_html(workspace_name),
        deep = escape_html(&deep_link),
        web = escape_html(&web_link),
    );
    document(&format!("{APP_NAME} is installed"), &body)
}

/// A failure: what happened in plain words, optionally Slack's own error
/// code, and a "Try again" link to the install page when trying again helps.
pub fn problem_page(
    heading: &str,
    message: &str,
    slack_error: Option<&str>,
    try_again: Option<&str>,
) -> String {
    let detail = slack_error
        .map(|code| {
            format!(
                "\n  <p class=\"note\">Slack&#39;s error code: <code>{}</code></p>",
                escape_html(code)
            )
        })
        .unwrap_or_default();
    let action = try_again
        .map(|href| {
            format!(
                "\n  <p class=\"action\"><a class=\"button primary\" href=\"{}\">Try again</a></p>",
                escape_html(href)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<main class="card">
  <div class="icon warn" aria-hidden="true">{icon}</div>
  <h1>{heading}</h1>
  <p class="lead">{message}</p>{action}{detail}
</main>"#,
        icon = WARN_ICON,
        heading = escape_html(heading),
        message = escape_html(message),
    );
    document(&format!("{heading} · {APP_NAME}"), &body)
}

fn document(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
{body}
</body>
</html>
"#,
        title = escape_html(title),
    )
}

const STYLE: &str = r#"
*,*::before,*::after{box-sizing:border-box}
html{color-scheme:light}
body{margin:0;min-height:100vh;display:flex;align-items:flex-start;justify-content:center;
  padding:clamp(20px,6vh,64px) 20px 32px;background:#f4f1ec;color:#1d1c1d;
  font:16px/1.55 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,
  "PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans",sans-serif}
.card{width:100%;max-width:560px;background:#fff;border-radius:14px;padding:36px 40px;
  box-shadow:0 1px 2px rgba(29,28,29,.06),0 12px 32px rgba(29,28,29,.08)}
.eyebrow{margin:0 0 8px;color:#611f69;font-size:13px;font-weight:700;letter-spacing:.08em;text-transform:uppercase}
h1{margin:0 0 12px;font-size:28px;line-height:1.2;letter-spacing:-.01em}
h2{margin:26px 0 8px;font-size:15px;color:#454245}
.lead{margin:0;color:#454245}
.action{margin:24px 0 0;display:flex;flex-wrap:wrap;gap:12px}
.note{margin:20px 0 0;color:#616061;font-size:14px}
code{font:14px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f4f1ec;
  padding:1px 5px;border-radius:4px;white-space:nowrap}
.perms{margin:0;padding:0;list-style:none;color:#454245;font-size:15px}
.perms li{position:relative;padding:3px 0 3px 28px}
.perms li::before{content:"";position:absolute;left:4px;top:10px;width:12px;height:6px;
  border-left:2px solid #2eb67d;border-bottom:2px solid #2eb67d;transform:rotate(-45deg)}
.add-to-slack{display:inline-flex;align-items:center;justify-content:center;gap:12px;
  width:236px;height:48px;background:#fff;color:#000;border:1px solid #ddd;border-radius:4px;
  font:600 16px/1 Lato,"Helvetica Neue",Arial,sans-serif;text-decoration:none;
  box-shadow:0 1px 2px rgba(0,0,0,.06)}
.add-to-slack:hover{border-color:#bbb;box-shadow:0 2px 6px rgba(0,0,0,.12)}
.add-to-slack svg{width:20px;height:20px;flex:none}
.button{display:inline-flex;align-items:center;justify-content:center;min-height:44px;padding:0 20px;
  border-radius:6px;border:1px solid #ccc;background:#fff;color:#1d1c1d;font-weight:700;
  font-size:15px;text-decoration:none}
.button:hover{border-color:#999}
.button.primary{background:#4a154b;border-color:#4a154b;color:#fff}
.button.primary:hover{background:#611f69;border-color:#611f69}
a:focus-visible{outline:3px solid #1264a3;outline-offset:2px}
.icon{width:48px;height:48px;margin-bottom:16px}
.icon svg{width:48px;height:48px;display:block}
@media (max-width:520px){.card{padding:28px 22px}h1{font-size:24px}}
"#;

/// Slack's logo as in Slack's own "Add to Slack" button markup.
const SLACK_LOGO: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 122.8 122.8" aria-hidden="true"><path d="M25.8 77.6c0 7.1-5.8 12.9-12.9 12.9S0 84.7 0 77.6s5.8-12.9 12.9-12.9h12.9v12.9zm6.5 0c0-7.1 5.8-12.9 12.9-12.9s12.9 5.8 12.9 12.9v32.3c0 7.1-5.8 12.9-12.9 12.9s-12.9-5.8-12.9-12.9V77.6z" fill="#e01e5a"/><path d="M45.2 25.8c-7.1 0-12.9-5.8-12.9-12.9S38.1 0 45.2 0s12.9 5.8 12.9 12.9v12.9H45.2zm0 6.5c7.1 0 12.9 5.8 12.9 12.9s-5.8 12.9-12.9 12.9H12.9C5.8 58.1 0 52.3 0 45.2s5.8-12.9 12.9-12.9h32.3z" fill="#36c5f0"/><path d="M97 45.2c0-7.1 5.8-12.9 12.9-12.9s12.9 5.8 12.9 12.9-5.8 12.9-12.9 12.9H97V45.2zm-6.5 0c0 7.1-5.8 12.9-12.9 12.9s-12.9-5.8-12.9-12.9V12.9C64.7 5.8 70.5 0 77.6 0s12.9 5.8 12.9 12.9v32.3z" fill="#2eb67d"/><path d="M77.6 97c7.1 0 12.9 5.8 12.9 12.9s-5.8 12.9-12.9 12.9-12.9-5.8-12.9-12.9V97h12.9zm0-6.5c-7.1 0-12.9-5.8-12.9-12.9s5.8-12.9 12.9-12.9h32.3c7.1 0 12.9 5.8 12.9 12.9s-5.8 12.9-12.9 12.9H77.6z" fill="#ecb22e"/></svg>"##;

const CHECK_ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><circle cx="24" cy="24" r="24" fill="#2eb67d"/><path d="M14 24.5l7 7 13-14" fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round" stroke-linejoin="round"/></svg>"##;

const WARN_ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><circle cx="24" cy="24" r="24" fill="#ecb22e"/><path d="M24 13v14" stroke="#1d1c1d" stroke-width="4" stroke-linecap="round"/><circle cx="24" cy="34.5" r="2.6" fill="#1d1c1d"/></svg>"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_both_quotes() {
        assert_eq!(
            escape_html(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn outside_values_are_escaped_on_every_page() {
        let success = success_page("<script>x</script>", "T1", "A1");
        assert!(!success.contains("<script>"));
        assert!(success.contains("&lt;script&gt;x&lt;/script&gt;"));
        let problem = problem_page("<b>", "<i>", Some("<u>"), Some("/a\"b"));
        assert!(!problem.contains("<b>") && !problem.contains("<i>") && !problem.contains("<u>"));
        assert!(problem.contains("href=\"/a&quot;b\""));
    }

    #[test]
    fn the_install_link_is_escaped_in_its_attribute() {
        let page = install_page("https://slack.com/oauth/v2/authorize?a=1&b=2");
        assert!(page.contains("href=\"https://slack.com/oauth/v2/authorize?a=1&amp;b=2\""));
        assert!(page.starts_with("<!DOCTYPE html>"));
    }
}
