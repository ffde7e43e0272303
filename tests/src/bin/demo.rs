//! `scripts/demo`: the bridge end to end with no Slack or Easemob account —
//! DynamoDB Local, fake Slack and Easemob, one conversation played through
//! the real handlers over HTTP.

#[tokio::main]
async fn main() {
    let transcript = bridge_tests::demo::run().await;
    if transcript.kefu_messages != 1 || transcript.slack_posts != 1 {
        eprintln!("unexpected totals: {transcript:?}");
        std::process::exit(1);
    }
}
