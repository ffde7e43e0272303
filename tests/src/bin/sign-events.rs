//! Re-signs the sample events in `events/` (or the files given) for a secret
//! and the current time. Slack's 5-minute replay window and the 24-hour one
//! for Easemob callbacks make a stored signature go stale, so run this right
//! before `cargo lambda invoke` or `sam local invoke`. Easemob callbacks get
//! their genuine `callId` (`<App Key>_<msg_id>`) with the fresh timestamp. Slack requests are signed over the raw body as
//! received (decoded when `isBase64Encoded`): Events API JSON and
//! interactivity form bodies alike.
//!
//! ```text
//! cargo run -q -p bridge-tests --bin sign-events -- [--slack-secret S] [--easemob-secret S] [FILE…]
//! ```
//! Secrets default to `SLACK_SIGNING_SECRET` / `EASEMOB_CALLBACK_SECRET` from
//! the environment, else the documented local ones.

use std::path::{Path, PathBuf};

use bridge_tests::events::resign;
use bridge_tests::signing::{LOCAL_EASEMOB_CALLBACK_SECRET, LOCAL_SLACK_SIGNING_SECRET};

fn main() {
    let mut slack_secret =
        std::env::var("SLACK_SIGNING_SECRET").unwrap_or_else(|_| LOCAL_SLACK_SIGNING_SECRET.into());
    let mut easemob_secret = std::env::var("EASEMOB_CALLBACK_SECRET")
        .unwrap_or_else(|_| LOCAL_EASEMOB_CALLBACK_SECRET.into());
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--slack-secret" => slack_secret = args.next().expect("--slack-secret needs a value"),
            "--easemob-secret" => {
                easemob_secret = args.next().expect("--easemob-secret needs a value")
            }
            "-h" | "--help" => {
                eprintln!("usage: sign-events [--slack-secret S] [--easemob-secret S] [FILE…]");
                return;
            }
            file => files.push(PathBuf::from(file)),
        }
    }
    if files.is_empty() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        let root = root.canonicalize().unwrap_or(root);
        files = bridge_tests::events::sample_files(&root);
    }
    let now = kefu_bridge::clock::now_epoch_secs();
    for file in files {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut event: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let what = resign(&mut event, &slack_secret, &easemob_secret, now);
        let out = serde_json::to_string_pretty(&event).expect("serialise") + "\n";
        std::fs::write(&file, out).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        println!("{:<16} {}", what, file.display());
    }
}
