//! Easemob user names from callbacks (`to`, `from`) decoded as visitor ids:
//! a decoded id re-encodes to the same name, ignoring case.
#![no_main]

use kefu_bridge::visitor::{VisitorId, MAX_USERNAME_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = VisitorId::decode(raw) {
        let encoded = id.to_string();
        assert!(encoded.eq_ignore_ascii_case(raw));
        assert!(encoded.len() <= MAX_USERNAME_BYTES);
        assert_eq!(VisitorId::decode(&encoded).as_ref(), Ok(&id));
        assert_eq!(
            VisitorId::decode(&encoded.to_ascii_lowercase()).as_ref(),
            Ok(&id)
        );
    }
});
