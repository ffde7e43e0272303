//! Easemob message callbacks: payload model and `security` check (SPEC §3 "Callback").
