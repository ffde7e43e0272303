//! Posting to Slack: escaping, splitting, agent identity, threads.
