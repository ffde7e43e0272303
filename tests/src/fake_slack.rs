//! A fake Slack Web API: checks `Authorization: Bearer` against the tokens it
//! issued (Basic client credentials for `oauth.v2.access`), takes parameters
//! as query, form or JSON like Slack does, answers `ok`/`error` with HTTP
//! 200, 429 with `Retry-After` when told to, and records every request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};

use crate::fake_server::{FakeServer, Fault, Faults, Recorded, Reply};

#[derive(Debug, Clone)]
pub struct BotToken {
    pub team_id: String,
    pub team_name: String,
    pub bot_id: String,
    pub bot_user_id: String,
    pub enterprise_id: Option<String>,
}

#[derive(Default)]
pub struct SlackState {
    pub client_id: String,
    pub client_secret: String,
    pub tokens: HashMap<String, BotToken>,
    pub users: HashMap<String, Value>,
    pub teams: HashMap<String, Value>,
    /// One-time OAuth codes and the `oauth.v2.access` answer each yields.
    pub oauth_codes: HashMap<String, Value>,
    /// Refresh tokens and the answer each yields (token rotation).
    pub refresh_tokens: HashMap<String, Value>,
    /// Channels that answer `channel_not_found`.
    pub missing_channels: HashSet<String>,
    pub faults: Faults,
    /// Messages actually posted (answered `ok: true`), as sent plus `ts`.
    pub posted: Vec<Value>,
    next_ts: u64,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub server: Arc<FakeServer>,
    pub state: Arc<Mutex<SlackState>>,
}

impl FakeSlack {
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        let state = Arc::new(Mutex::new(SlackState {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            next_ts: 1_700_000_000,
            ..Default::default()
        }));
        let handler_state = state.clone();
        let server = FakeServer::start(move |request| {
            let mut state = handler_state.lock().unwrap();
            answer(&mut state, request)
        })
        .await;
        Self {
            server: Arc::new(server),
            state,
        }
    }

    /// What the bridge uses as `SLACK_API_BASE_URL`.
    pub fn api_base_url(&self) -> String {
        format!("{}/api", self.server.url())
    }

    pub fn add_bot_token(&self, token: &str, bot: BotToken) {
        self.state.lock().unwrap().tokens.insert(token.into(), bot);
    }

    pub fn revoke_token(&self, token: &str) {
        self.state.lock().unwrap().tokens.remove(token);
    }

    pub fn add_user(&self, user: Value) {
        let id = user["id"].as_str().expect("user id").to_string();
        self.state.lock().unwrap().users.insert(id, user);
    }

    pub fn add_team(&self, team: Value) {
        let id = team["id"].as_str().expect("team id").to_string();
        self.state.lock().unwrap().teams.insert(id, team);
    }

    pub fn fail_once(&self, method: &str, fault: Fault) {
        self.state.lock().unwrap().faults.once(method, fault);
    }

    pub fn fail_always(&self, method: &str, fault: Fault) {
        self.state.lock().unwrap().faults.always(method, fault);
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Requests to one Web API method, e.g. `chat.postMessage`.
    pub fn calls(&self, method: &str) -> Vec<Recorded> {
        self.server.requests_to(&format!("/api/{method}"))
    }

    /// Bodies of the messages actually posted (answered `ok: true`).
    pub fn posts(&self) -> Vec<Value> {
        self.state.lock().unwrap().posted.clone()
    }
}

fn ok(mut value: Value) -> Reply {
    value["ok"] = json!(true);
    Reply::json(200, value)
}

fn error(code: &str) -> Reply {
    Reply::json(200, json!({ "ok": false, "error": code }))
}

fn answer(state: &mut SlackState, request: &Recorded) -> Reply {
    let Some(method) = request.path.strip_prefix("/api/") else {
        return Reply::json(404, json!({ "ok": false, "error": "unknown_method" }));
    };
    let method = method.to_string();
    let mut slow = None;
    if let Some(fault) = state.faults.take(&method) {
        match fault {
            Fault::Status(status) => return Reply::json(status, json!({ "ok": false })),
            Fault::RateLimited(secs) => {
                return Reply::json(429, json!({ "ok": false, "error": "ratelimited" }))
                    .with_header("retry-after", &secs.to_string())
            }
            Fault::Error(code) => return error(&code),
            Fault::Slow(delay) => slow = Some(delay),
            Fault::Pass => {}
        }
    }
    let reply = route(state, &method, request);
    match slow {
        Some(delay) => reply.delayed(delay),
        None => reply,
    }
}

fn route(state: &mut SlackState, method: &str, request: &Recorded) -> Reply {
    if method == "oauth.v2.access" {
        return oauth_v2_access(state, request);
    }
    // New apps may not pass tokens in the query or body.
    if request.param("token").is_some() {
        return error("invalid_auth");
    }
    let Some(token) = request.bearer() else {
        return error("not_authed");
    };
    let Some(bot) = state.tokens.get(token).cloned() else {
        return error("invalid_auth");
    };
    match method {
        "auth.test" => ok(json!({
            "url": format!("https://{}.slack.com/", bot.team_name.to_lowercase()),
            "team": bot.team_name, "team_id": bot.team_id, "user_id": bot.bot_user_id,
            "bot_id": bot.bot_id, "user": "kefu_support", "is_enterprise_install": false,
            "enterprise_id": bot.enterprise_id,
        })),
        "users.info" => match request.param("user").and_then(|u| state.users.get(&u)) {
            Some(user) => ok(json!({ "user": user })),
            None => error("user_not_found"),
        },
        "team.info" => {
            let team = request.param("team").unwrap_or(bot.team_id.clone());
            match state.teams.get(&team) {
                Some(info) => ok(json!({ "team": info })),
                None => error("team_not_found"),
            }
        }
        "chat.postMessage" => {
            let is_json = request
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json"));
            if !is_json {
                return error("invalid_form_data");
            }
            let body = request.json();
            let Some(channel) = body["channel"].as_str().map(str::to_string) else {
                return error("channel_not_found");
            };
            if state.missing_channels.contains(&channel) {
                return error("channel_not_found");
            }
            if body["text"].as_str().unwrap_or("").is_empty() && body.get("blocks").is_none() {
                return error("no_text");
            }
            state.next_ts += 1;
            let ts = format!("{}.000100", state.next_ts);
            let mut posted = body.clone();
            posted["ts"] = json!(ts);
            posted["bot_id"] = json!(bot.bot_id);
            posted["bot_user_id"] = json!(bot.bot_user_id);
            posted["team_id"] = json!(bot.team_id);
            state.posted.push(posted);
            ok(
                json!({ "channel": channel, "ts": ts, "message": { "text": body["text"], "bot_id": bot.bot_id, "ts": ts } }),
            )
        }
        _ => error("unknown_method"),
    }
}

fn oauth_v2_access(state: &mut SlackState, request: &Recorded) -> Reply {
    let basic = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (id, secret) = match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((id, secret)) => (id.to_string(), secret.to_string()),
        None => (
            request.param("client_id").unwrap_or_default(),
            request.param("client_secret").unwrap_or_default(),
        ),
    };
    if id != state.client_id {
        return error("invalid_client_id");
    }
    if secret != state.client_secret {
        return error("bad_client_secret");
    }
    if request.param("grant_type").as_deref() == Some("refresh_token") {
        let refresh = request.param("refresh_token").unwrap_or_default();
        return match state.refresh_tokens.remove(&refresh) {
            Some(answer) => ok(answer),
            None => error("invalid_refresh_token"),
        };
    }
    let code = request.param("code").unwrap_or_default();
    match state.oauth_codes.remove(&code) {
        Some(answer) => {
            let expected_redirect = answer["__redirect_uri"].as_str().map(str::to_string);
            if let Some(expected) = expected_redirect {
                if request.param("redirect_uri").as_deref() != Some(expected.as_str()) {
                    return error("bad_redirect_uri");
                }
            }
            let mut answer = answer;
            if let Some(obj) = answer.as_object_mut() {
                obj.remove("__redirect_uri");
            }
            ok(answer)
        }
        None => error("invalid_code"),
    }
}
