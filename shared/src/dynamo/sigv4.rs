//! AWS Signature Version 4, for the few requests this crate sends.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::clock::utc_parts;

type HmacSha256 = Hmac<Sha256>;

pub struct SigningInput<'a> {
    pub method: &'a str,
    /// Already URI-encoded path, `/` for DynamoDB.
    pub path: &'a str,
    /// Already canonical query string (sorted, encoded); empty for DynamoDB.
    pub query: &'a str,
    /// Headers to sign, names lower-case. `host` and `x-amz-date` must be present.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub region: &'a str,
    pub service: &'a str,
    pub epoch_secs: i64,
}

/// `YYYYMMDD'T'HHMMSS'Z'`
pub fn amz_date(epoch_secs: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(epoch_secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// The value of the `Authorization` header.
pub fn authorization(input: &SigningInput<'_>, access_key_id: &str, secret_key: &str) -> String {
    let amz_date = amz_date(input.epoch_secs);
    let date = &amz_date[..8];

    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        input.path,
        input.query,
        canonical_headers,
        signed_headers,
        hex::encode(Sha256::digest(input.body))
    );
    let scope = format!("{date}/{}/{}/aws4_request", input.region, input.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, input.region.as_bytes());
    let k_service = hmac(&k_region, input.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `get-vanilla` and `post-vanilla` from the AWS SigV4 test suite.
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const WHEN: i64 = 1_440_938_160; // 20150830T123600Z

    fn vanilla(method: &str) -> String {
        authorization(
            &SigningInput {
                method,
                path: "/",
                query: "",
                headers: &[
                    ("host", "example.amazonaws.com"),
                    ("x-amz-date", "20150830T123600Z"),
                ],
                body: b"",
                region: "us-east-1",
                service: "service",
                epoch_secs: WHEN,
            },
            AKID,
            SECRET,
        )
    }

    #[test]
    fn get_vanilla_matches_the_aws_test_suite() {
        assert_eq!(
            vanilla("GET"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla_matches_the_aws_test_suite() {
        assert_eq!(
            vanilla("POST"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn amz_date_format() {
        assert_eq!(amz_date(WHEN), "20150830T123600Z");
    }
}
