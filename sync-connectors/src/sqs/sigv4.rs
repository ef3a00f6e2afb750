//! AWS Signature Version 4 for one request: canonical request, string to sign, the derived
//! signing key, the `Authorization` header.
//!
//! Only what the SQS JSON protocol needs: signed headers given by the caller plus `host` and
//! `x-amz-date` (and `x-amz-security-token` for temporary credentials), the payload hashed
//! with SHA-256. The path is taken as the URL holds it (already percent-encoded once).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::http::Secret;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Credentials and scope of a signature.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signer<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) secret_access_key: &'a Secret,
    pub(crate) session_token: Option<&'a Secret>,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

/// `hex(sha256(data))`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything else `%XX`.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `host[:port]` as the request sends it (the port only when not the scheme's default).
pub(crate) fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

impl Signer<'_> {
    /// The headers to add to the request: `x-amz-date`, `x-amz-security-token` when the
    /// credentials are temporary, and `authorization`. `headers` are the other headers to
    /// sign (names in any case).
    pub(crate) fn sign(
        &self,
        method: &str,
        url: &url::Url,
        headers: &[(&str, &str)],
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let date = &amz_date[..8];
        let mut signed: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        signed.push(("host".into(), host_header(url)));
        signed.push(("x-amz-date".into(), amz_date.clone()));
        if let Some(token) = self.session_token {
            signed.push(("x-amz-security-token".into(), token.expose().to_owned()));
        }
        signed.sort();
        let signed_names = signed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let signature = self.signature(method, url, &signed, &signed_names, payload, &amz_date);
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let mut out = vec![("x-amz-date".to_owned(), amz_date)];
        if let Some(token) = self.session_token {
            out.push(("x-amz-security-token".into(), token.expose().to_owned()));
        }
        out.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
                self.access_key_id
            ),
        ));
        out
    }

    fn signature(
        &self,
        method: &str,
        url: &url::Url,
        signed: &[(String, String)],
        signed_names: &str,
        payload: &[u8],
        amz_date: &str,
    ) -> String {
        let date = &amz_date[..8];
        let mut query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
            .collect();
        query.sort();
        let query = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut canonical = format!("{method}\n{}\n{query}\n", url.path());
        for (k, v) in signed {
            let _ = writeln!(canonical, "{k}:{v}");
        }
        let _ = write!(canonical, "\n{signed_names}\n{}", sha256_hex(payload));
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let key = format!("AWS4{}", self.secret_access_key.expose());
        let k_date = hmac(key.as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        let k_signing = hmac(&k_service, b"aws4_request");
        hex(&hmac(&k_signing, to_sign.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> (Secret, DateTime<Utc>) {
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let now = "2015-08-30T12:36:00Z".parse().unwrap();
        (secret, now)
    }

    fn authorization(url: &str) -> String {
        let (secret, now) = example();
        let signer = Signer {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: &secret,
            session_token: None,
            region: "us-east-1",
            service: "service",
        };
        let url = url::Url::parse(url).unwrap();
        let headers = signer.sign("GET", &url, &[], b"", now);
        headers
            .into_iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1
    }

    #[test]
    fn the_aws_test_suite_get_vanilla_signature_is_reproduced() {
        assert_eq!(
            authorization("https://example.amazonaws.com/"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn query_pairs_are_sorted_before_signing() {
        assert!(
            authorization("https://example.amazonaws.com/?Param2=value2&Param1=value1")
                .ends_with("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        );
    }

    #[test]
    fn temporary_credentials_sign_the_session_token() {
        let (secret, now) = example();
        let token = Secret::new("session-token");
        let signer = Signer {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: &secret,
            session_token: Some(&token),
            region: "eu-west-1",
            service: "sqs",
        };
        let url = url::Url::parse("http://127.0.0.1:9324/").unwrap();
        let headers = signer.sign("POST", &url, &[("X-Amz-Target", "x")], b"{}", now);
        let auth = &headers.last().unwrap().1;
        assert!(auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target"));
        assert!(headers
            .iter()
            .any(|(k, v)| k == "x-amz-security-token" && v == "session-token"));
    }
}
