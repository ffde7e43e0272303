//! A fake Slack Web API: checks `Authorization: Bearer` against the tokens it
//! issued (Basic client credentials for `oauth.v2.access`), takes parameters
//! as query, form or JSON like Slack does, answers `ok`/`error` with HTTP
//! 200, 429 with `Retry-After` when told to, and records every request.
//!
//! Files: it serves the files it was given at `url_private(_download)` to a
//! bot token of their workspace (anyone else gets Slack's HTML sign-in
//! page, as Slack answers), and takes uploads through the external flow
//! (`files.getUploadURLExternal` → POST to `upload_url` →
//! `files.completeUploadExternal`). It also answers `chat.update`,
//! `chat.postEphemeral`, `chat.delete` (only the bot's own messages, like
//! Slack) and `views.open`, recording each.
//!
//! Tokens live as Slack's do: a new install of a workspace (a code
//! exchanged) revokes the workspace's older bot tokens at once (they answer
//! `token_revoked`), a refresh token is honoured once, and a token can be
//! made to answer `token_expired`.

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
    /// Bot tokens a reinstall revoked: they answer `token_revoked`.
    pub revoked: HashSet<String>,
    /// Bot tokens past their expiry (token rotation): `token_expired`.
    pub expired: HashSet<String>,
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
    /// Files visitors shared, by id.
    pub hosted_files: HashMap<String, HostedFile>,
    /// Uploads begun with `files.getUploadURLExternal`, by file id.
    pub pending_uploads: HashMap<String, PendingUpload>,
    /// Files shared by `files.completeUploadExternal`, in order.
    pub shared_files: Vec<SharedFile>,
    /// `chat.update` bodies that succeeded, in order.
    pub updates: Vec<Value>,
    /// `chat.delete` bodies that succeeded, in order.
    pub deletes: Vec<Value>,
    /// `chat.postEphemeral` bodies, in order.
    pub ephemerals: Vec<Value>,
    /// `views.open` bodies, in order.
    pub views: Vec<Value>,
    next_file: u64,
    /// The fake's own `http://127.0.0.1:port`, for the URLs it hands out.
    pub base_url: String,
}

/// A file a visitor shared, served at its private URLs.
#[derive(Debug, Clone)]
pub struct HostedFile {
    pub team_id: String,
    pub name: String,
    pub mimetype: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct PendingUpload {
    pub filename: String,
    pub length: u64,
    pub bytes: Option<Vec<u8>>,
}

/// A file the bot shared into a conversation.
#[derive(Debug, Clone)]
pub struct SharedFile {
    pub file_id: String,
    pub title: String,
    pub filename: String,
    pub channel_id: String,
    pub thread_ts: Option<String>,
    pub initial_comment: Option<String>,
    pub bytes: Vec<u8>,
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
        state.lock().unwrap().base_url = server.url();
        Self {
            server: Arc::new(server),
            state,
        }
    }

    /// What the bridge uses as `SLACK_API_BASE_URL`.
    pub fn api_base_url(&self) -> String {
        format!("{}/api", self.server.url())
    }

    /// A bot token Slack has issued (again, if it had been revoked).
    pub fn add_bot_token(&self, token: &str, bot: BotToken) {
        let mut state = self.state.lock().unwrap();
        state.revoked.remove(token);
        state.expired.remove(token);
        state.tokens.insert(token.into(), bot);
    }

    /// Slack no longer knows `token`: it answers `invalid_auth`.
    pub fn revoke_token(&self, token: &str) {
        self.state.lock().unwrap().tokens.remove(token);
    }

    /// `token` has expired (token rotation): it answers `token_expired`.
    pub fn expire_token(&self, token: &str) {
        self.state.lock().unwrap().expired.insert(token.into());
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

    /// Hosts a file a visitor of `team` shares; returns the file object as
    /// it appears in a `file_share` message event.
    pub fn add_file(
        &self,
        team: &str,
        name: &str,
        mimetype: &str,
        bytes: Vec<u8>,
        pixels: Option<(u64, u64)>,
    ) -> Value {
        let base = self.server.url();
        let mut state = self.state.lock().unwrap();
        state.next_file += 1;
        let id = format!("F0SHARED{:04}", state.next_file);
        let mut file = json!({
            "id": id, "created": 1_700_000_000, "timestamp": 1_700_000_000,
            "name": name, "title": name, "mimetype": mimetype,
            "filetype": name.rsplit('.').next().unwrap_or("binary"),
            "pretty_type": mimetype, "user": "U0VISITOR", "mode": "hosted",
            "editable": false, "is_external": false, "external_type": "",
            "size": bytes.len(),
            "url_private": format!("{base}/files-pri/{team}-{id}/{name}"),
            "url_private_download": format!("{base}/files-pri/{team}-{id}/download/{name}"),
            "permalink": format!("https://{}.slack.com/files/U0VISITOR/{id}/{name}", team.to_lowercase()),
            "is_public": false, "public_url_shared": false,
        });
        if let Some((w, h)) = pixels {
            file["original_w"] = json!(w);
            file["original_h"] = json!(h);
        }
        state.hosted_files.insert(
            id,
            HostedFile {
                team_id: team.to_string(),
                name: name.to_string(),
                mimetype: mimetype.to_string(),
                bytes,
            },
        );
        file
    }

    /// Files the bot shared with `files.completeUploadExternal`.
    pub fn shared_files(&self) -> Vec<SharedFile> {
        self.state.lock().unwrap().shared_files.clone()
    }

    /// Posted messages not deleted since.
    pub fn visible_posts(&self) -> Vec<Value> {
        self.posts()
            .into_iter()
            .filter(|post| post["deleted"] != true)
            .collect()
    }

    /// Posts whose blocks are all `context` blocks: the quiet one-line
    /// notices.
    pub fn context_posts(&self) -> Vec<Value> {
        self.posts()
            .into_iter()
            .filter(|post| {
                post["blocks"].as_array().is_some_and(|blocks| {
                    !blocks.is_empty() && blocks.iter().all(|b| b["type"] == "context")
                })
            })
            .collect()
    }

    /// `chat.delete` bodies that succeeded, in order.
    pub fn deletes(&self) -> Vec<Value> {
        self.state.lock().unwrap().deletes.clone()
    }

    pub fn updates(&self) -> Vec<Value> {
        self.state.lock().unwrap().updates.clone()
    }

    pub fn ephemerals(&self) -> Vec<Value> {
        self.state.lock().unwrap().ephemerals.clone()
    }

    pub fn views(&self) -> Vec<Value> {
        self.state.lock().unwrap().views.clone()
    }
}

/// Slack's answer to a file URL without a valid token: its sign-in page.
fn sign_in_page() -> Reply {
    Reply::bytes(
        200,
        "text/html; charset=utf-8",
        b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>".to_vec(),
    )
}

/// `GET /files-pri/{team}-{file id}/…` with the bot token of that team.
fn serve_file(state: &SlackState, request: &Recorded) -> Reply {
    let Some(key) = request
        .path
        .strip_prefix("/files-pri/")
        .and_then(|rest| rest.split('/').next())
    else {
        return Reply::json(404, json!({ "ok": false }));
    };
    let Some((team, id)) = key.split_once('-') else {
        return Reply::json(404, json!({ "ok": false }));
    };
    let bot = request
        .bearer()
        .filter(|t| !state.expired.contains(*t))
        .and_then(|t| state.tokens.get(t));
    let Some(file) = state.hosted_files.get(id) else {
        return Reply::bytes(404, "text/plain", b"file not found".to_vec());
    };
    match bot {
        Some(bot) if bot.team_id == team && file.team_id == team => {
            Reply::bytes(200, &file.mimetype, file.bytes.clone())
        }
        _ => sign_in_page(),
    }
}

/// `POST /upload/v1/{file id}`: the bytes of a pending upload (raw, or a
/// multipart body's first file part, as Slack accepts both).
fn receive_upload(state: &mut SlackState, request: &Recorded) -> Reply {
    let id = request.path.trim_start_matches("/upload/v1/").to_string();
    let Some(pending) = state.pending_uploads.get_mut(&id) else {
        return Reply::bytes(404, "text/plain", b"upload url not found".to_vec());
    };
    let content_type = request.header("content-type").unwrap_or("");
    let bytes = crate::fake_easemob::parse_multipart(content_type, &request.body)
        .and_then(|parts| parts.into_iter().next())
        .map(|part| part.data)
        .unwrap_or_else(|| request.body.clone());
    let length = bytes.len();
    pending.bytes = Some(bytes);
    Reply::bytes(200, "text/plain", format!("OK - {length}").into_bytes())
}

/// The `files` argument of `files.completeUploadExternal`: a JSON array in
/// a JSON body, or a JSON string in a form.
fn upload_refs(request: &Recorded) -> Option<Vec<(String, String)>> {
    let files = match request.json().get("files") {
        Some(Value::Array(files)) => Value::Array(files.clone()),
        _ => serde_json::from_str(&request.param("files")?).ok()?,
    };
    files
        .as_array()?
        .iter()
        .map(|f| {
            Some((
                f.get("id")?.as_str()?.to_string(),
                f.get("title")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ))
        })
        .collect()
}

fn ok(mut value: Value) -> Reply {
    value["ok"] = json!(true);
    Reply::json(200, value)
}

fn error(code: &str) -> Reply {
    Reply::json(200, json!({ "ok": false, "error": code }))
}

fn answer(state: &mut SlackState, request: &Recorded) -> Reply {
    if request.path.starts_with("/files-pri/") {
        return serve_file(state, request);
    }
    if request.path.starts_with("/upload/v1/") && request.method == "POST" {
        return receive_upload(state, request);
    }
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
    if state.revoked.contains(token) {
        return error("token_revoked");
    }
    if state.expired.contains(token) {
        return error("token_expired");
    }
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
        "chat.update" => {
            let body = request.json();
            let (Some(channel), Some(ts)) = (body["channel"].as_str(), body["ts"].as_str()) else {
                return error("invalid_arguments");
            };
            let Some(message) = state
                .posted
                .iter_mut()
                .find(|p| p["channel"] == channel && p["ts"] == ts)
            else {
                return error("message_not_found");
            };
            if message["bot_id"] != bot.bot_id.as_str() {
                return error("cant_update_message");
            }
            for field in ["text", "blocks"] {
                if let Some(value) = body.get(field) {
                    message[field] = value.clone();
                }
            }
            state.updates.push(body.clone());
            ok(json!({ "channel": channel, "ts": ts, "text": body["text"] }))
        }
        "chat.delete" => {
            let body = request.json();
            let (Some(channel), Some(ts)) = (body["channel"].as_str(), body["ts"].as_str()) else {
                return error("invalid_arguments");
            };
            let Some(message) = state
                .posted
                .iter_mut()
                .find(|p| p["channel"] == channel && p["ts"] == ts && p["deleted"] != true)
            else {
                return error("message_not_found");
            };
            if message["bot_id"] != bot.bot_id.as_str() {
                return error("cant_delete_message");
            }
            message["deleted"] = json!(true);
            state.deletes.push(body.clone());
            ok(json!({ "channel": channel, "ts": ts }))
        }
        "chat.postEphemeral" => {
            let body = request.json();
            if body["channel"].as_str().is_none() || body["user"].as_str().is_none() {
                return error("invalid_arguments");
            }
            if body["text"].as_str().unwrap_or("").is_empty() && body.get("blocks").is_none() {
                return error("no_text");
            }
            state.ephemerals.push(body);
            state.next_ts += 1;
            ok(json!({ "message_ts": format!("{}.000200", state.next_ts) }))
        }
        "views.open" => {
            let body = request.json();
            if body["trigger_id"].as_str().unwrap_or("").is_empty() {
                return error("invalid_arguments");
            }
            if body["view"]["type"] != "modal" {
                return error("invalid_arguments");
            }
            state.views.push(body.clone());
            ok(json!({ "view": { "id": format!("V0VIEW{}", state.views.len()), "type": "modal" } }))
        }
        "files.getUploadURLExternal" => {
            // The method takes a form or query, never JSON.
            if request
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
            {
                return error("invalid_arguments");
            }
            let filename = request.param("filename").unwrap_or_default();
            let length = request.param("length").and_then(|l| l.parse::<u64>().ok());
            let (false, Some(length)) = (filename.is_empty(), length.filter(|l| *l > 0)) else {
                return error("invalid_arguments");
            };
            state.next_file += 1;
            let id = format!("F0UPLOAD{:04}", state.next_file);
            state.pending_uploads.insert(
                id.clone(),
                PendingUpload {
                    filename,
                    length,
                    bytes: None,
                },
            );
            ok(json!({ "upload_url": format!("{}/upload/v1/{id}", state.base_url), "file_id": id }))
        }
        "files.completeUploadExternal" => {
            let Some(refs) = upload_refs(request).filter(|r| !r.is_empty()) else {
                return error("invalid_arguments");
            };
            let channel = request.param("channel_id");
            if let Some(channel) = &channel {
                if state.missing_channels.contains(channel) {
                    return error("channel_not_found");
                }
            }
            let mut files = Vec::new();
            for (id, title) in &refs {
                let Some(pending) = state.pending_uploads.get(id) else {
                    return error("file_not_found");
                };
                match &pending.bytes {
                    Some(bytes) if bytes.len() as u64 == pending.length => {}
                    Some(_) => return error("file_upload_size_mismatch"),
                    None => return error("file_not_uploaded"),
                }
                files.push(json!({ "id": id, "title": title }));
            }
            for (id, title) in refs {
                let pending = state.pending_uploads.remove(&id).unwrap_or_default();
                state.shared_files.push(SharedFile {
                    file_id: id,
                    title,
                    filename: pending.filename,
                    channel_id: channel.clone().unwrap_or_default(),
                    thread_ts: request.param("thread_ts"),
                    initial_comment: request.param("initial_comment"),
                    bytes: pending.bytes.unwrap_or_default(),
                });
            }
            ok(json!({ "files": files }))
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
            if let Some(token) = answer["access_token"].as_str() {
                revoke_older_tokens(state, token);
            }
            ok(answer)
        }
        None => error("invalid_code"),
    }
}

/// A workspace installed again: its bot tokens other than `issued` stop
/// working at once.
fn revoke_older_tokens(state: &mut SlackState, issued: &str) {
    let Some(team) = state.tokens.get(issued).map(|bot| bot.team_id.clone()) else {
        return;
    };
    let older: Vec<String> = state
        .tokens
        .iter()
        .filter(|(token, bot)| token.as_str() != issued && bot.team_id == team)
        .map(|(token, _)| token.clone())
        .collect();
    for token in older {
        state.tokens.remove(&token);
        state.revoked.insert(token);
    }
}
