//! `POST /easemob/callback`: agent replies → Slack (issue "Agent replies reach Slack").
