//! A fake Easemob REST API for one app key: issues tokens for the right
//! client credentials, checks `Authorization: Bearer` on every other call,
//! keeps IM users (case-insensitive, stored lower-case like Easemob), takes
//! messages up to 5,120 bytes, keeps chat files (multipart upload with
//! `restrict-access`, download with the token and `share-secret`, 10 MB
//! at most; or a redirect elsewhere when told), and records everything.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::fake_server::{FakeServer, Fault, Faults, Recorded, Reply};

pub const MAX_BODY_BYTES: usize = 5_120;
/// Easemob's chat file limit.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;

/// A chat file the fake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatFile {
    pub uuid: String,
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// Set when uploaded with `restrict-access`: downloads must give it.
    pub share_secret: Option<String>,
}

#[derive(Default)]
pub struct EasemobState {
    pub org: String,
    pub app: String,
    pub client_id: String,
    pub client_secret: String,
    pub valid_tokens: HashSet<String>,
    pub token_requests: usize,
    /// What `expires_in` says (seconds).
    pub expires_in: i64,
    pub users: HashSet<String>,
    /// Message bodies accepted, in order.
    pub messages: Vec<Value>,
    pub faults: Faults,
    /// Chat files by uuid, and the uuids in upload order.
    pub files: HashMap<String, ChatFile>,
    pub uploads: Vec<String>,
    /// Chat files whose download answers `302 Found` to another URL.
    pub redirects: HashMap<String, String>,
    next_file: u64,
}

#[derive(Clone)]
pub struct FakeEasemob {
    pub server: Arc<FakeServer>,
    pub state: Arc<Mutex<EasemobState>>,
}

impl FakeEasemob {
    pub async fn start(org: &str, app: &str, client_id: &str, client_secret: &str) -> Self {
        let state = Arc::new(Mutex::new(EasemobState {
            org: org.into(),
            app: app.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            expires_in: 5_184_000,
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

    /// What the bridge uses as `EASEMOB_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    pub fn fail_once(&self, route: &str, fault: Fault) {
        self.state.lock().unwrap().faults.once(route, fault);
    }

    pub fn fail_always(&self, route: &str, fault: Fault) {
        self.state.lock().unwrap().faults.always(route, fault);
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Invalidates every issued token: the next call gets 401.
    pub fn expire_tokens(&self) {
        self.state.lock().unwrap().valid_tokens.clear();
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().unwrap().token_requests
    }

    pub fn messages(&self) -> Vec<Value> {
        self.state.lock().unwrap().messages.clone()
    }

    /// The texts of accepted messages, in order.
    pub fn texts(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| m["msg"]["msg"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn users(&self) -> HashSet<String> {
        self.state.lock().unwrap().users.clone()
    }

    pub fn calls(&self, route: &str) -> Vec<Recorded> {
        self.server.requests_to(&format!("/{route}"))
    }

    /// Puts a file in the fake as an agent's upload would (restricted):
    /// returns its URL and share-secret, for an agent's `img`/`file` body.
    pub fn add_file(&self, filename: &str, content_type: &str, bytes: Vec<u8>) -> (String, String) {
        let mut state = self.state.lock().unwrap();
        let file = store_file(&mut state, filename, content_type, bytes, true);
        let url = format!(
            "{}/{}/{}/chatfiles/{}",
            self.base_url(),
            state.org,
            state.app,
            file.uuid
        );
        (url, file.share_secret.unwrap_or_default())
    }

    /// Files uploaded through `POST chatfiles`, in order.
    pub fn uploaded_files(&self) -> Vec<ChatFile> {
        let state = self.state.lock().unwrap();
        state
            .uploads
            .iter()
            .filter_map(|uuid| state.files.get(uuid).cloned())
            .collect()
    }

    pub fn file(&self, uuid: &str) -> Option<ChatFile> {
        self.state.lock().unwrap().files.get(uuid).cloned()
    }

    /// Makes the download of the file at `url` (as `add_file` returned it)
    /// answer `302 Found` with `Location: location`.
    pub fn redirect_download(&self, url: &str, location: &str) {
        let uuid = url.rsplit('/').next().unwrap_or_default().to_string();
        self.state
            .lock()
            .unwrap()
            .redirects
            .insert(uuid, location.to_string());
    }
}

fn store_file(
    state: &mut EasemobState,
    filename: &str,
    content_type: &str,
    bytes: Vec<u8>,
    restricted: bool,
) -> ChatFile {
    state.next_file += 1;
    let uuid = format!("0c0f5f3a-e66b-11e3-8863-{:012x}", state.next_file);
    let file = ChatFile {
        uuid: uuid.clone(),
        filename: filename.to_string(),
        content_type: content_type.to_string(),
        bytes,
        share_secret: restricted.then(|| format!("DRGM8OZrEeO1vafuJSo2IjHB{:08}", state.next_file)),
    };
    state.files.insert(uuid, file.clone());
    file
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone)]
pub struct FormPart {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// Parses a `multipart/form-data` body strictly (RFC 7578): the boundary
/// from the header, CRLF line ends, a closing delimiter. `None` when the
/// body is not well formed.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<FormPart>> {
    let (media, params) = content_type.split_once(';')?;
    if !media.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = params
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()?
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let find = |haystack: &[u8], needle: &[u8], from: usize| {
        haystack[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    let mut at = find(body, &delimiter, 0)?;
    if at != 0 {
        return None;
    }
    let mut parts = Vec::new();
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--") {
            return Some(parts);
        }
        if !body[at..].starts_with(b"\r\n") {
            return None;
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at)?;
        let head = std::str::from_utf8(&body[at..head_end]).ok()?;
        let data_start = head_end + 4;
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(&delimiter);
        let data_end = find(body, &closing, data_start)?;
        let mut part = FormPart {
            name: String::new(),
            filename: None,
            content_type: None,
            data: body[data_start..data_end].to_vec(),
        };
        for line in head.split("\r\n") {
            let (header, value) = line.split_once(':')?;
            if header.eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').map(str::trim) {
                    if let Some(v) = param.strip_prefix("name=") {
                        part.name = v.trim_matches('"').to_string();
                    } else if let Some(v) = param.strip_prefix("filename=") {
                        part.filename = Some(v.trim_matches('"').replace("%22", "\""));
                    }
                }
            } else if header.eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.trim().to_string());
            }
        }
        parts.push(part);
        at = data_end + 2;
    }
}

fn easemob_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        json!({ "error": error, "error_description": description, "exception": "fake", "timestamp": 0, "duration": 0 }),
    )
}

fn answer(state: &mut EasemobState, request: &Recorded) -> Reply {
    let prefix = format!("/{}/{}/", state.org, state.app);
    let Some(route) = request.path.strip_prefix(&prefix).map(str::to_string) else {
        return easemob_error(404, "organization_application_not_found", "unknown org/app");
    };
    let mut slow = None;
    if let Some(fault) = state.faults.take(&route) {
        match fault {
            Fault::Status(401) => {
                return easemob_error(401, "auth_bad_access_token", "Unable to authenticate")
            }
            Fault::Status(status) => return easemob_error(status, "server_error", "fault"),
            Fault::RateLimited(secs) => {
                return easemob_error(429, "reach_limit", "too many requests")
                    .with_header("retry-after", &secs.to_string())
            }
            Fault::Error(code) => return easemob_error(400, &code, "fault"),
            Fault::Slow(delay) => slow = Some(delay),
            Fault::Pass => {}
        }
    }
    let reply = route_request(state, &route, request);
    match slow {
        Some(delay) => reply.delayed(delay),
        None => reply,
    }
}

fn route_request(state: &mut EasemobState, route: &str, request: &Recorded) -> Reply {
    if request.method == "GET" {
        if let Some(uuid) = route.strip_prefix("chatfiles/") {
            return download(state, uuid, request);
        }
    }
    if request.method != "POST" {
        return easemob_error(405, "method_not_allowed", "POST only");
    }
    if route == "token" {
        let body = request.json();
        if body["grant_type"] != "client_credentials"
            || body["client_id"] != state.client_id.as_str()
            || body["client_secret"] != state.client_secret.as_str()
        {
            return easemob_error(401, "invalid_grant", "invalid client credentials");
        }
        state.token_requests += 1;
        let token = format!("YWMt-fake-token-{}", state.token_requests);
        state.valid_tokens.insert(token.clone());
        return Reply::json(
            200,
            json!({ "access_token": token, "expires_in": state.expires_in, "application": "fake-app-uuid" }),
        );
    }
    let authorised = request
        .bearer()
        .is_some_and(|t| state.valid_tokens.contains(t));
    if !authorised {
        return easemob_error(
            401,
            "auth_bad_access_token",
            "Unable to authenticate due to corrupt access token",
        );
    }
    match route {
        "users" => {
            let body = request.json();
            let Some(username) = body["username"].as_str() else {
                return easemob_error(400, "illegal_argument", "username is required");
            };
            let valid = !username.is_empty()
                && username.len() <= 64
                && username
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !valid || body["password"].as_str().unwrap_or("").is_empty() {
                return easemob_error(400, "illegal_argument", "bad username or password");
            }
            let lower = username.to_ascii_lowercase();
            if !state.users.insert(lower.clone()) {
                return easemob_error(400, "duplicate_unique_property_exists", "username exists");
            }
            Reply::json(
                200,
                json!({ "action": "post", "entities": [{ "username": lower, "activated": true }] }),
            )
        }
        "messages" => {
            if request.body.len() > MAX_BODY_BYTES {
                return easemob_error(413, "request_entity_too_large", "body over 5 KB");
            }
            let body = request.json();
            let from = body["from"].as_str().unwrap_or("").to_ascii_lowercase();
            if body["target_type"] != "users"
                || !body["target"].is_array()
                || body["msg"]["type"].is_null()
            {
                return easemob_error(400, "illegal_argument", "bad message");
            }
            if !state.users.contains(&from) {
                return easemob_error(400, "illegal_argument", "from user does not exist");
            }
            let target = body["target"][0].as_str().unwrap_or("").to_string();
            state.messages.push(body);
            Reply::json(
                200,
                json!({ "action": "post", "data": { target: "success" } }),
            )
        }
        "chatfiles" => upload(state, request),
        _ => easemob_error(404, "not_found", "unknown route"),
    }
}

/// `POST chatfiles`: the file in multipart part `file`.
fn upload(state: &mut EasemobState, request: &Recorded) -> Reply {
    let content_type = request.header("content-type").unwrap_or("");
    let Some(parts) = parse_multipart(content_type, &request.body) else {
        return easemob_error(400, "illegal_argument", "not a multipart/form-data body");
    };
    let Some(part) = parts.into_iter().find(|p| p.name == "file") else {
        return easemob_error(400, "illegal_argument", "no part named file");
    };
    if part.data.len() > MAX_FILE_BYTES {
        return easemob_error(413, "request_entity_too_large", "file over 10 MB");
    }
    let restricted = request.header("restrict-access").is_some();
    let file = store_file(
        state,
        part.filename.as_deref().unwrap_or(""),
        part.content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
        part.data,
        restricted,
    );
    state.uploads.push(file.uuid.clone());
    let mut entity = json!({ "uuid": file.uuid, "type": "chatfile" });
    if let Some(secret) = &file.share_secret {
        entity["share-secret"] = json!(secret);
    }
    Reply::json(
        200,
        json!({ "action": "post", "application": "fake-app-uuid", "path": "/chatfiles",
                "entities": [entity], "timestamp": 0, "duration": 0,
                "organization": state.org, "applicationName": state.app }),
    )
}

/// `GET chatfiles/{uuid}`: a valid token, and the share-secret (header or
/// query) for a restricted file.
fn download(state: &mut EasemobState, uuid: &str, request: &Recorded) -> Reply {
    let authorised = request
        .bearer()
        .is_some_and(|t| state.valid_tokens.contains(t));
    if !authorised {
        return easemob_error(401, "auth_bad_access_token", "Unable to authenticate");
    }
    if let Some(location) = state.redirects.get(uuid) {
        return Reply::bytes(302, "text/plain", Vec::new()).with_header("location", location);
    }
    let Some(file) = state.files.get(uuid) else {
        return easemob_error(404, "file_not_found", "no such file");
    };
    if let Some(secret) = &file.share_secret {
        let given = request
            .header("share-secret")
            .map(str::to_string)
            .or_else(|| {
                request
                    .query
                    .iter()
                    .find(|(k, _)| k == "share-secret")
                    .map(|(_, v)| v.clone())
            });
        if given.as_deref() != Some(secret.as_str()) {
            return easemob_error(401, "unauthorized", "share-secret required for this file");
        }
    }
    Reply::bytes(200, &file.content_type, file.bytes.clone())
}
