//! Files both ways (issue "Rich conversations"; docs/design.md §3 "Files").
//!
//! Slack → Kefu: a shared file is downloaded with the bot token straight
//! into the multipart body that uploads it to Easemob (`chatfiles`), and
//! the visitor then sends an `img` or `file` message pointing at it.
//! Kefu → Slack: an agent's `img`/`file`/`audio`/`video` is downloaded from
//! Easemob with the token and its `share-secret`, and uploaded into the
//! visitor's conversation with Slack's external upload flow.
//!
//! Each file is held in memory once, capped at Easemob's 10 MB (a 128 MB
//! Lambda holds that comfortably); one buffer also lets an upload be
//! retried after a token refresh without downloading again. A transfer gets
//! its own time ([`FILE_BUDGET`]) inside Lambda's 10 s timeout, longer than
//! the 2 s a message call gets: a large file may outlast the sender's
//! wait, which its claim makes harmless (the retry finds it done).

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bridge::Bridge;
use crate::easemob::callback::FileBody;
use crate::easemob::chatfiles::{DownloadError, MultipartFile, UploadedFile};
use crate::easemob::visitor_message::{FileKind, FileMessage};
use crate::easemob::EasemobError;
use crate::relay::to_slack::avatar_url;
use crate::secret::Secret;
use crate::slack::bot_token::BotToken;
use crate::slack::events::SlackFile;
use crate::slack::files::{CompleteUpload, SlackDownloadError, UploadedFileRef};
use crate::slack::markup::escape;
use crate::slack::web::{EphemeralMessage, SlackApiError};

pub use crate::easemob::chatfiles::MAX_FILE_BYTES;

/// Time all of one message's file transfers may take, from the start of
/// the invocation; Lambda stops the function at 10 s (template.yaml), and
/// the message sends that follow need a second or two.
pub const FILE_BUDGET: Duration = Duration::from_secs(7);
/// Sends that follow file transfers may start until this long after the
/// start of the invocation (each takes at most 2 s).
pub const SEND_AFTER_FILES: Duration = Duration::from_secs(8);
/// No transfer step is started with less than this.
const MIN_STEP: Duration = Duration::from_millis(500);
/// A transfer is only started (or retried) with this much of the budget left.
const TRANSFER_ALLOWANCE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// Over the 10 MB limit.
    TooLarge { size: u64 },
    /// May work later: timeouts, 5xx, 429, a token to refresh.
    Transient(String),
    /// Will not work: refused, no bytes to fetch, missing scope.
    Permanent(String),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::TooLarge { size } => write!(f, "file too large ({})", human_size(*size)),
            FileError::Transient(detail) => write!(f, "temporarily unavailable: {detail}"),
            FileError::Permanent(detail) => write!(f, "cannot be relayed: {detail}"),
        }
    }
}

fn easemob_failure(error: EasemobError) -> FileError {
    match error {
        EasemobError::Rejected { status: 413, .. } => FileError::TooLarge {
            size: MAX_FILE_BYTES + 1,
        },
        EasemobError::Rejected { status: 403, .. } => FileError::Transient(error.to_string()),
        EasemobError::Rejected { .. } => FileError::Permanent(error.to_string()),
        error => FileError::Transient(error.to_string()),
    }
}

fn slack_failure(error: SlackApiError) -> FileError {
    if error.is_transient() || matches!(error, SlackApiError::Malformed(_)) {
        FileError::Transient(error.to_string())
    } else {
        FileError::Permanent(error.to_string())
    }
}

/// "340 KB", "12.4 MB".
pub fn human_size(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / MB)
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

fn time_left(deadline: Instant) -> Result<Duration, FileError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < MIN_STEP {
        return Err(FileError::Transient("out of time for the file".into()));
    }
    Ok(left)
}

/// A file's name as the agent and Slack see it.
pub fn slack_file_name(file: &SlackFile) -> String {
    file.name
        .as_deref()
        .or(file.title.as_deref())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("file")
        .to_string()
}

/// The Easemob token, refreshed once when `call` answers 401.
async fn with_easemob_token<T, F, Fut>(bridge: &Bridge, call: F) -> Result<T, FileError>
where
    F: Fn(Secret) -> Fut,
    Fut: std::future::Future<Output = Result<T, EasemobError>>,
{
    let token = bridge
        .easemob_token
        .token(&bridge.easemob, &bridge.store)
        .await
        .map_err(easemob_failure)?;
    match call(token.clone()).await {
        Err(EasemobError::Unauthorized) => {
            let fresh = bridge
                .easemob_token
                .refresh_after_unauthorized(&bridge.easemob, &bridge.store, &token)
                .await
                .map_err(easemob_failure)?;
            call(fresh).await.map_err(easemob_failure)
        }
        other => other.map_err(easemob_failure),
    }
}

/// Slack → Kefu: uploads the file a visitor shared to Easemob and returns
/// the message that shows it to the agent (`img` for `image/*`, with the
/// original's size when Slack gives it; `file` otherwise).
pub async fn slack_file_to_kefu(
    bridge: &Bridge,
    bot_token: &BotToken<'_>,
    file: &SlackFile,
    deadline: Instant,
) -> Result<FileMessage, FileError> {
    let name = slack_file_name(file);
    if let Some(size) = file.size.filter(|size| *size > MAX_FILE_BYTES) {
        return Err(FileError::TooLarge { size });
    }
    if file.is_external
        || matches!(
            file.mode.as_deref(),
            Some("tombstone" | "hidden_by_limit" | "external")
        )
    {
        return Err(FileError::Permanent(format!(
            "Slack holds no bytes for it (mode {})",
            file.mode.as_deref().unwrap_or("external")
        )));
    }
    let Some(url) = file
        .url_private_download
        .as_deref()
        .or(file.url_private.as_deref())
        .filter(|u| !u.is_empty())
    else {
        return Err(FileError::Permanent("no download URL".into()));
    };
    let mimetype = file
        .mimetype
        .as_deref()
        .unwrap_or("application/octet-stream");
    let mut form = MultipartFile::new(&name, mimetype);
    let downloaded = bridge
        .slack
        .download_private_file(
            bot_token,
            url,
            MAX_FILE_BYTES,
            time_left(deadline)?,
            form.file_bytes(),
        )
        .await;
    match downloaded {
        Ok(_) => {}
        Err(SlackDownloadError::TooLarge { at_least }) => {
            return Err(FileError::TooLarge { size: at_least })
        }
        Err(SlackDownloadError::NotSlackHosted) => {
            return Err(FileError::Permanent("not hosted by Slack".into()))
        }
        Err(SlackDownloadError::SignInPage) => {
            return Err(FileError::Permanent(
                "Slack refused the download (is the files:read scope granted?)".into(),
            ))
        }
        Err(SlackDownloadError::Slack(error)) => return Err(slack_failure(error)),
    }
    let file_length = form.file_len() as u64;
    let (content_type, body) = form.finish();
    let uploaded: UploadedFile = with_easemob_token(bridge, |token| {
        let body = body.clone();
        let content_type = content_type.clone();
        async move {
            let timeout = deadline
                .saturating_duration_since(Instant::now())
                .max(MIN_STEP);
            bridge
                .easemob
                .upload_chatfile(&token, &content_type, body, timeout)
                .await
        }
    })
    .await?;
    let is_image = mimetype.to_ascii_lowercase().starts_with("image/");
    Ok(FileMessage {
        kind: if is_image {
            FileKind::Image {
                size: file.original_w.zip(file.original_h),
            }
        } else {
            FileKind::File
        },
        url: uploaded.url,
        filename: name,
        secret: uploaded.share_secret,
        file_length,
    })
}

/// The conversation a visitor shared files in.
#[derive(Debug, Clone, Copy)]
pub struct SharedIn<'a> {
    pub bot_token: &'a BotToken<'a>,
    pub channel: &'a str,
    pub user: &'a str,
    pub thread_ts: Option<&'a str>,
}

/// The Kefu message bodies for a visitor's files, one per file, in order:
/// an `img`/`file` message (`file_body`) for each file relayed, else the
/// text line (`line_body`) naming it, and the visitor is told why. Files
/// before `skip` were delivered by an earlier attempt: their places hold
/// empty bodies and nothing is fetched for them.
pub async fn visitor_file_bodies(
    bridge: &Bridge,
    shared: SharedIn<'_>,
    files: &[SlackFile],
    skip: usize,
    deadline: Instant,
    file_body: impl Fn(&FileMessage) -> Vec<u8>,
    line_body: impl Fn(&str) -> Vec<u8>,
) -> Vec<Vec<u8>> {
    let mut bodies = Vec::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        if index < skip {
            bodies.push(Vec::new());
            continue;
        }
        let mut tries = 0;
        let relayed = loop {
            tries += 1;
            if deadline.saturating_duration_since(Instant::now()) < TRANSFER_ALLOWANCE {
                break Err(FileError::Transient("out of time for the file".into()));
            }
            match slack_file_to_kefu(bridge, shared.bot_token, file, deadline).await {
                Err(FileError::Transient(detail)) if tries < 2 => {
                    tracing::info!(detail, "visitor_file_retrying");
                }
                other => break other,
            }
        };
        match relayed {
            Ok(message) => bodies.push(file_body(&message)),
            Err(error) => {
                tracing::warn!(%error, file = file.id.as_deref(), "visitor_file_not_relayed");
                bodies.push(line_body(&slack_file_line(file, &error)));
                tell_file_not_relayed(bridge, shared, file, &error).await;
            }
        }
    }
    bodies
}

/// The line the agent reads for a file that is not relayed.
pub fn slack_file_line(file: &SlackFile, error: &FileError) -> String {
    let name = slack_file_name(file);
    match error {
        FileError::TooLarge { size } => format!(
            "[file] {name} ({}) — too large to forward (limit 10 MB)",
            human_size(*size)
        ),
        _ => match file.size {
            Some(size) => format!(
                "[file] {name} ({}) — could not be forwarded",
                human_size(size)
            ),
            None => format!("[file] {name} — could not be forwarded"),
        },
    }
}

/// Tells the visitor (only them) that a file they shared did not reach the
/// support team, and why.
pub async fn tell_file_not_relayed(
    bridge: &Bridge,
    shared: SharedIn<'_>,
    file: &SlackFile,
    error: &FileError,
) {
    let name = escape(&slack_file_name(file).replace('*', ""));
    let text = match error {
        FileError::TooLarge { size } => format!(
            "*{name}* is too large to send to the support team ({}; the limit is 10 MB). They were told its name; please share a smaller file or a link.",
            human_size(*size)
        ),
        FileError::Transient(_) => format!(
            "*{name}* could not be sent to the support team just now. They were told its name; please share it again in a moment."
        ),
        FileError::Permanent(_) => format!(
            "*{name}* could not be sent to the support team (only files stored in Slack can be). They were told its name."
        ),
    };
    let note = EphemeralMessage {
        channel: shared.channel.to_string(),
        user: shared.user.to_string(),
        text,
        thread_ts: shared.thread_ts.map(str::to_string),
    };
    if let Err(error) = bridge.slack.post_ephemeral(shared.bot_token, &note).await {
        tracing::warn!(%error, "file_note_failed");
    }
}

/// An agent's file, by the kind of body it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentFileKind {
    Image,
    File,
    Audio,
    Video,
}

impl AgentFileKind {
    pub fn noun(self) -> &'static str {
        match self {
            AgentFileKind::Image => "an image",
            AgentFileKind::File => "a file",
            AgentFileKind::Audio => "a voice message",
            AgentFileKind::Video => "a video",
        }
    }

    fn default_name(self) -> &'static str {
        match self {
            AgentFileKind::Image => "image.jpg",
            AgentFileKind::File => "file",
            AgentFileKind::Audio => "voice.amr",
            AgentFileKind::Video => "video.mp4",
        }
    }
}

/// Where an agent's file goes in Slack.
#[derive(Debug, Clone, Copy)]
pub struct SlackDestination<'a> {
    pub bot_token: &'a BotToken<'a>,
    pub channel: &'a str,
    pub thread_ts: Option<&'a str>,
    /// The agent's name for the file's comment.
    pub agent_name: Option<&'a str>,
}

/// Kefu → Slack: downloads an agent's file from Easemob and shares it in
/// the visitor's conversation, with a comment naming the agent.
pub async fn kefu_file_to_slack(
    bridge: &Bridge,
    kind: AgentFileKind,
    file: &FileBody,
    to: SlackDestination<'_>,
    deadline: Instant,
) -> Result<(), FileError> {
    if let Some(size) = file.file_length.filter(|size| *size > MAX_FILE_BYTES) {
        return Err(FileError::TooLarge { size });
    }
    // Kefu may hand protocol-relative URLs, like its avatars.
    let Some(url) = avatar_url(&file.url) else {
        return Err(FileError::Permanent("no download URL".into()));
    };
    // Only this app's own chat files are fetched (docs/design.md §3
    // "Files"): anything else gets no request, no token, no share-secret.
    let url = match bridge.easemob.chatfile_url(&url) {
        Ok(url) => url,
        Err(refused) => {
            let host = url::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string));
            tracing::warn!(reason = %refused, host, "agent_file_url_refused");
            return Err(FileError::Permanent(format!("the file's URL {refused}")));
        }
    };
    let bytes: Vec<u8> = with_easemob_token(bridge, |token| {
        let url = url.clone();
        async move {
            let mut bytes = Vec::new();
            let timeout = deadline
                .saturating_duration_since(Instant::now())
                .max(MIN_STEP);
            match bridge
                .easemob
                .download_chatfile(
                    &token,
                    &url,
                    file.secret.as_ref(),
                    MAX_FILE_BYTES,
                    timeout,
                    &mut bytes,
                )
                .await
            {
                Ok(_) => Ok(Ok(bytes)),
                Err(DownloadError::TooLarge { at_least }) => {
                    Ok(Err(FileError::TooLarge { size: at_least }))
                }
                Err(DownloadError::Redirected { status }) => {
                    tracing::warn!(status, "agent_file_redirect_not_followed");
                    Ok(Err(FileError::Permanent(format!(
                        "Easemob answered HTTP {status}, a redirect, which is not followed"
                    ))))
                }
                Err(DownloadError::Easemob(error)) => Err(error),
            }
        }
    })
    .await??;
    let filename = match file.filename.trim() {
        "" => kind.default_name().to_string(),
        name => name.to_string(),
    };
    let ticket = bridge
        .slack
        .get_upload_url_external(to.bot_token, &filename, bytes.len() as u64)
        .await
        .map_err(slack_failure)?;
    bridge
        .slack
        .upload_to_url(&ticket.upload_url, Bytes::from(bytes), time_left(deadline)?)
        .await
        .map_err(slack_failure)?;
    let who = match to.agent_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("*{}*", escape(&name.replace('*', ""))),
        None => "The agent".to_string(),
    };
    let complete = CompleteUpload {
        files: vec![UploadedFileRef {
            id: ticket.file_id,
            title: filename,
        }],
        channel_id: to.channel.to_string(),
        thread_ts: to.thread_ts.map(str::to_string),
        initial_comment: Some(format!("{who} sent {}", kind.noun())),
    };
    bridge
        .slack
        .complete_upload_external(to.bot_token, &complete)
        .await
        .map_err(slack_failure)?;
    Ok(())
}

/// The line the Slack user reads for an agent's file that is not shown.
pub fn kefu_file_line(kind: AgentFileKind, file: &FileBody, error: &FileError) -> String {
    let name = file.filename.trim();
    match (error, name) {
        (FileError::TooLarge { size }, "") => format!(
            "📎 Agent sent {} too large to show here ({})",
            kind.noun(),
            human_size(*size)
        ),
        (FileError::TooLarge { size }, name) => format!(
            "📎 Agent sent {} too large to show here: {name} ({})",
            kind.noun(),
            human_size(*size)
        ),
        (_, "") => format!("📎 Agent sent {}", kind.noun()),
        (_, name) => format!("📎 Agent sent {}: {name}", kind.noun()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(1), "1 KB");
        assert_eq!(human_size(340 * 1024), "340 KB");
        assert_eq!(human_size(13_002_342), "12.4 MB");
    }

    #[test]
    fn lines_for_files_that_are_not_relayed() {
        let file = SlackFile {
            name: Some("report.pdf".into()),
            size: Some(12 * 1024 * 1024),
            ..Default::default()
        };
        assert_eq!(
            slack_file_line(
                &file,
                &FileError::TooLarge {
                    size: 12 * 1024 * 1024
                }
            ),
            "[file] report.pdf (12.0 MB) — too large to forward (limit 10 MB)"
        );
        let body = FileBody {
            filename: "clip.mp4".into(),
            ..Default::default()
        };
        assert_eq!(
            kefu_file_line(
                AgentFileKind::Video,
                &body,
                &FileError::TooLarge {
                    size: 23 * 1024 * 1024
                }
            ),
            "📎 Agent sent a video too large to show here: clip.mp4 (23.0 MB)"
        );
        assert_eq!(
            kefu_file_line(
                AgentFileKind::Image,
                &body,
                &FileError::Permanent("x".into())
            ),
            "📎 Agent sent an image: clip.mp4"
        );
    }
}
