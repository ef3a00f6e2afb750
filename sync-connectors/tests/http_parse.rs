//! Header parsing and secret handling through the public API: `Link`, `Retry-After`,
//! `Secret` serde and the auth configuration.

use std::time::{Duration, SystemTime};

use sync_connectors::http::{
    next_link, parse_link_header, parse_retry_after, ApiKeyLocation, Auth, HeaderMap, Link, Secret,
};

fn link(target: &str, rels: &[&str], params: &[(&str, &str)]) -> Link {
    Link {
        target: target.into(),
        rels: rels.iter().map(|r| r.to_string()).collect(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn link_header_with_several_links_and_params() {
    let links = parse_link_header(
        r#"<https://api.example.com/items?page=2>; rel="next"; title="x", <https://api.example.com/items?page=9>; rel=last"#,
    );
    assert_eq!(
        links,
        vec![
            link(
                "https://api.example.com/items?page=2",
                &["next"],
                &[("title", "x")]
            ),
            link("https://api.example.com/items?page=9", &["last"], &[]),
        ]
    );
}

#[test]
fn link_header_with_multiple_rels_lowercased() {
    let links = parse_link_header(r#"<a>; REL="Next  last", <b>; rel=prev; rel=next"#);
    assert_eq!(links[0].rels, vec!["next", "last"]);
    assert!(links[0].has_rel("LAST"));
    // Only the first rel parameter counts (RFC 8288 section 3.3).
    assert_eq!(links[1].rels, vec!["prev"]);
}

#[test]
fn link_header_commas_in_targets_and_quotes_do_not_split() {
    let links = parse_link_header(
        r#"<https://x/items?ids=1,2,3>; rel="next"; title="a, \"b\"; c", <https://x/y>; rel="prev""#,
    );
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(links[0].target, "https://x/items?ids=1,2,3");
    assert_eq!(links[0].param("title"), Some(r#"a, "b"; c"#));
    assert_eq!(links[1].rels, vec!["prev"]);
}

#[test]
fn link_header_malformed_links_are_skipped() {
    let links = parse_link_header(r#"garbage; rel="next, x", <ok>; rel=next, <unterminated"#);
    assert_eq!(links, vec![link("ok", &["next"], &[])]);
    assert!(parse_link_header("").is_empty());
    assert!(parse_link_header(" , ,").is_empty());
}

#[test]
fn next_link_over_all_link_headers_or_none() {
    let mut headers = HeaderMap::new();
    assert_eq!(next_link(&headers), None);
    headers.append("link", r#"<https://x/first>; rel="first""#.parse().unwrap());
    headers.append("link", r#"<https://x/9>; rel="last""#.parse().unwrap());
    assert_eq!(next_link(&headers), None, "no next");
    headers.append("link", r#"<https://x/2>; rel="prev next""#.parse().unwrap());
    assert_eq!(next_link(&headers).as_deref(), Some("https://x/2"));
}

#[test]
fn retry_after_seconds() {
    let now = SystemTime::now();
    assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
}

#[test]
fn retry_after_http_date_in_the_future_and_past() {
    let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:07 GMT", now),
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    // The obsolete formats HTTP allows parse too.
    assert_eq!(
        parse_retry_after("Wednesday, 21-Oct-15 07:28:10 GMT", now),
        Some(Duration::from_secs(10))
    );
}

#[test]
fn retry_after_garbage_is_none() {
    let now = SystemTime::now();
    for garbage in [
        "",
        "soon",
        "-1",
        "2.5",
        "7s",
        "Wed, 32 Oct 2015 07:28:00 GMT",
    ] {
        assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
    }
}

#[test]
fn secret_from_a_plain_string() {
    let secret: Secret = serde_json::from_str(r#""plain-s3cret""#).unwrap();
    assert_eq!(secret.expose(), "plain-s3cret");
    assert_eq!(format!("{secret} {secret:?}"), "*** ***");
}

#[test]
fn secret_from_an_environment_variable() {
    std::env::set_var("SYNC_HTTP_TEST_SECRET_PRESENT", "env-s3cret");
    let secret: Secret =
        serde_json::from_str(r#"{"env": "SYNC_HTTP_TEST_SECRET_PRESENT"}"#).unwrap();
    assert_eq!(secret.expose(), "env-s3cret");
    let auth: Auth = toml::from_str(
        "type = \"api_key\"\nname = \"X-Key\"\nvalue = { env = \"SYNC_HTTP_TEST_SECRET_PRESENT\" }\n",
    )
    .unwrap();
    assert_eq!(
        auth,
        Auth::ApiKey {
            name: "X-Key".into(),
            value: Secret::new("env-s3cret"),
            location: ApiKeyLocation::Header,
        }
    );
}

#[test]
fn secret_from_a_missing_variable_names_the_variable() {
    let error = serde_json::from_str::<Secret>(r#"{"env": "SYNC_HTTP_TEST_SECRET_MISSING"}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("SYNC_HTTP_TEST_SECRET_MISSING"), "{error}");
    assert!(serde_json::from_str::<Secret>(r#"{"env": "X", "other": 1}"#).is_err());
    assert!(serde_json::from_str::<Secret>("12").is_err());
}

#[test]
fn secrets_never_serialize_their_value() {
    let auth = Auth::Basic {
        username: "u".into(),
        password: Secret::new("pw-s3cret"),
    };
    let json = serde_json::to_string(&auth).unwrap();
    assert_eq!(json, r#"{"type":"basic","username":"u","password":"***"}"#);
    let toml = toml::to_string(&auth).unwrap();
    assert!(!toml.contains("pw-s3cret"), "{toml}");
}

#[test]
fn auth_rejects_unknown_fields_and_types() {
    assert_eq!(
        serde_json::from_str::<Auth>(r#"{"type": "none"}"#).unwrap(),
        Auth::None
    );
    for bad in [
        r#"{"type": "none", "token": "x"}"#,
        r#"{"type": "bearer", "token": "x", "scheme": "y"}"#,
        r#"{"type": "digest"}"#,
        r#"{"type": "api_key", "name": "k", "value": "v", "location": "cookie"}"#,
    ] {
        assert!(serde_json::from_str::<Auth>(bad).is_err(), "{bad}");
    }
}
