//! Whatever Lambda hands a function: classified as an API Gateway request,
//! a Scheduled Event or neither, and requests turned into HttpRequests (a
//! lying base64 flag is a 400, never a panic).
#![no_main]

use kefu_bridge::lambda::{classify, to_apigw_response, to_http_request, Incoming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match classify(payload) {
        Incoming::Http(event) => match to_http_request(*event) {
            Ok(request) => {
                let _ = request.header("x-slack-signature");
                let _ = request.has_media_type("application/json");
                let _ = request.cookie("slack_oauth_state");
                let _ = request.query_param("code");
            }
            Err(response) => {
                assert_eq!(response.status, 400);
                let _ = to_apigw_response(response);
            }
        },
        Incoming::Scheduled(event) => {
            let _ = event.source;
        }
        Incoming::Unrecognised(_) => {}
    }
});
