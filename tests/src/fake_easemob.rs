//! A fake Easemob REST API for one app key: issues tokens for the right
//! client credentials, checks `Authorization: Bearer` on every other call,
//! keeps IM users (case-insensitive, stored lower-case like Easemob), takes
//! messages up to 5,120 bytes, and records everything.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::fake_server::{FakeServer, Fault, Faults, Recorded, Reply};

pub const MAX_BODY_BYTES: usize = 5_120;

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
        _ => easemob_error(404, "not_found", "unknown route"),
    }
}
