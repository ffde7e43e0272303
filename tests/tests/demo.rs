//! The demo as a smoke test: its transcript says what each side saw.

#[tokio::test]
async fn the_demo_plays_a_whole_conversation_without_loops() {
    let transcript = bridge_tests::demo::run().await;
    let text = transcript.lines.join("\n");
    assert_eq!(transcript.kefu_messages, 1, "{text}");
    assert_eq!(transcript.slack_posts, 1, "{text}");
    let expect = [
        "[admin]   GET /slack/install → 200 \"Add to Slack\" page",
        "[admin]   Slack approves → /slack/oauth/callback → 200: installed in Acme Cafe",
        "[slack]   Casey writes \"Hi! Can I get a flat white & a muffin?\" → /slack/events → 200",
        "[kefu]    agent sees casey (Casey Customer, Acme Cafe): \"Hi! Can I get a flat white & a muffin?\"",
        "[easemob] echo of Casey's own message → /easemob/callback → 200, not posted",
        "[kefu]    Alice Agent replies → /easemob/callback → 200",
        "[slack]   Casey sees in D0CASEY from Alice Agent: \"Coming right up — 5 minutes <3\"",
    ];
    for line in expect {
        assert!(
            transcript.lines.iter().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let echoes = transcript
        .lines
        .iter()
        .filter(|l| l.contains("not forwarded"))
        .count();
    assert!(echoes >= 2, "{text}");
}
