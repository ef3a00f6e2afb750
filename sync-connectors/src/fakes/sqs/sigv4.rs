//! The fake's own SigV4 check of every request, computed independently of the connector's
//! signer.

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use wiremock::Request;

use super::{ACCESS_KEY, REGION, SECRET_KEY};

type HmacSha256 = hmac::Hmac<Sha256>;

fn mac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut m = HmacSha256::new_from_slice(key).expect("hmac accepts any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Recomputes the SigV4 signature of `req` from the headers it names.
pub(super) fn verify_signature(req: &Request) -> Result<(), String> {
    let h = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    let auth = h("authorization").ok_or("no authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or(format!("authorization shape {auth:?}"))?;
    let (credential, rest) = rest
        .split_once(", SignedHeaders=")
        .ok_or("no SignedHeaders")?;
    let (signed, signature) = rest.split_once(", Signature=").ok_or("no Signature")?;
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5
        || parts[0] != ACCESS_KEY
        || parts[2] != REGION
        || parts[3] != "sqs"
        || parts[4] != "aws4_request"
    {
        return Err(format!("credential scope {credential:?}"));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("signature is not 64 hex digits".into());
    }
    let amz_date = h("x-amz-date").ok_or("no x-amz-date")?;
    if !amz_date.starts_with(parts[1]) {
        return Err("x-amz-date and credential date differ".into());
    }
    let names: Vec<&str> = signed.split(';').collect();
    for must in ["content-type", "host", "x-amz-date", "x-amz-target"] {
        if !names.contains(&must) {
            return Err(format!("{must} not signed"));
        }
    }
    let mut canonical = format!("POST\n{}\n\n", req.url.path());
    for n in &names {
        canonical.push_str(&format!(
            "{n}:{}\n",
            h(n).ok_or(format!("signed header {n} missing"))?.trim()
        ));
    }
    canonical.push_str(&format!("\n{signed}\n{}", hex(&Sha256::digest(&req.body))));
    let scope = format!("{}/{REGION}/sqs/aws4_request", parts[1]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k = mac(format!("AWS4{SECRET_KEY}").as_bytes(), parts[1]);
    let k = mac(&k, REGION);
    let k = mac(&k, "sqs");
    let k = mac(&k, "aws4_request");
    if hex(&mac(&k, &to_sign)) != signature {
        return Err("signature does not match".into());
    }
    Ok(())
}
