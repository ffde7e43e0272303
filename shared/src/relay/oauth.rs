//! Slack OAuth v2 install flow (issue "Install the app into any workspace").
