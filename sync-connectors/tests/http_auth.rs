//! Authentication against a real server: basic, bearer, API keys, OAuth2 client credentials
//! (cache, single-flight refresh, expiry, 401), and secrets kept out of Debug and errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sync_connectors::http::{
    ApiKeyLocation, Auth, ClientAuth, HttpClient, HttpConfig, HttpRequest, Secret,
};
use sync_core::{ErrorKind, RetryClass};
use wiremock::matchers::{
    basic_auth, bearer_token, body_string_contains, header, method, path, query_param,
};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// No timeouts, so the same client works on a paused clock.
fn client(auth: Auth) -> HttpClient {
    HttpClient::new(HttpConfig {
        connect_timeout_ms: None,
        read_timeout_ms: None,
        total_timeout_ms: None,
        pool_idle_timeout_ms: None,
        ..HttpConfig::default()
    })
    .unwrap()
    .with_auth(auth)
}

async fn requests_to(server: &MockServer, at: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == at)
        .collect()
}

fn assert_hidden(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "`{secret}` leaked in: {text}");
    }
}

#[tokio::test]
async fn basic_and_bearer_reach_the_server() {
    let server = MockServer::start().await;
    Mock::given(path("/basic"))
        .and(basic_auth("alice", "pw-basic-1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/bearer"))
        .and(bearer_token("tok-bearer-1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let basic = client(Auth::Basic {
        username: "alice".into(),
        password: Secret::new("pw-basic-1"),
    });
    basic
        .execute(&HttpRequest::get(format!("{}/basic", server.uri())))
        .await
        .unwrap();
    let bearer = client(Auth::Bearer {
        token: Secret::new("tok-bearer-1"),
    });
    bearer
        .execute(&HttpRequest::get(format!("{}/bearer", server.uri())))
        .await
        .unwrap();
}

#[tokio::test]
async fn api_keys_reach_the_server_in_a_header_or_the_query() {
    let server = MockServer::start().await;
    Mock::given(path("/header"))
        .and(header("x-api-key", "key-header-1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/query"))
        .and(query_param("page", "2"))
        .and(query_param("api_key", "key-query-1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/denied"))
        .respond_with(ResponseTemplate::new(403).set_body_string("forbidden"))
        .mount(&server)
        .await;
    let header_key = client(Auth::ApiKey {
        name: "X-Api-Key".into(),
        value: Secret::new("key-header-1"),
        location: ApiKeyLocation::Header,
    });
    header_key
        .execute(&HttpRequest::get(format!("{}/header", server.uri())))
        .await
        .unwrap();
    let query_key = client(Auth::ApiKey {
        name: "api_key".into(),
        value: Secret::new("key-query-1"),
        location: ApiKeyLocation::Query,
    });
    query_key
        .execute(&HttpRequest::get(format!("{}/query?page=2", server.uri())))
        .await
        .unwrap();

    // The URL in the error has no query, so the key is not in it.
    let error = query_key
        .execute(&HttpRequest::get(format!("{}/denied", server.uri())))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert_eq!(error.retry_class(), RetryClass::Permanent);
    assert_eq!(
        error.context_value("url"),
        Some(format!("{}/denied", server.uri()).as_str())
    );
    assert_hidden(&format!("{error} {error:?}"), &["key-query-1"]);
}

#[tokio::test]
async fn a_transport_error_with_a_query_key_does_not_show_the_key() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = client(Auth::ApiKey {
        name: "api_key".into(),
        value: Secret::new("key-refused-1"),
        location: ApiKeyLocation::Query,
    })
    .execute(&HttpRequest::get(format!(
        "http://{addr}/x?other=key-refused-2"
    )))
    .await
    .unwrap_err();
    assert!(error.is_transient());
    assert_eq!(
        error.context_value("url"),
        Some(format!("http://{addr}/x").as_str())
    );
    assert_hidden(
        &format!("{error} {error:?}"),
        &["key-refused-1", "key-refused-2"],
    );
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_401_errors() {
    let server = MockServer::start().await;
    Mock::given(path("/private"))
        .respond_with(ResponseTemplate::new(401).set_body_string(r#"{"error":"unauthorized"}"#))
        .mount(&server)
        .await;
    let secrets = ["pw-s3cret", "tok-s3cret", "key-s3cret", "cs-s3cret"];
    let auths = [
        Auth::Basic {
            username: "bob".into(),
            password: Secret::new("pw-s3cret"),
        },
        Auth::Bearer {
            token: Secret::new("tok-s3cret"),
        },
        Auth::ApiKey {
            name: "X-Key".into(),
            value: Secret::new("key-s3cret"),
            location: ApiKeyLocation::Header,
        },
        Auth::ApiKey {
            name: "key".into(),
            value: Secret::new("key-s3cret"),
            location: ApiKeyLocation::Query,
        },
    ];
    for auth in auths {
        assert_hidden(&format!("{auth:?}"), &secrets);
        let client = client(auth);
        assert_hidden(&format!("{client:?}"), &secrets);
        let error = client
            .execute(&HttpRequest::get(format!("{}/private", server.uri())))
            .await
            .unwrap_err();
        assert_eq!(error.context_value("status"), Some("401"));
        assert_eq!(error.retry_class(), RetryClass::Permanent);
        assert_hidden(&format!("{error} {error:?}"), &secrets);
    }
    let oauth = Auth::OAuth2ClientCredentials {
        token_url: "https://auth.example.com/token".into(),
        client_id: "id".into(),
        client_secret: Secret::new("cs-s3cret"),
        scopes: vec![],
        audience: None,
        client_auth: ClientAuth::Basic,
    };
    assert_hidden(&format!("{oauth:?} {:?}", client(oauth.clone())), &secrets);
    let request = HttpRequest::get("https://api.example.com/x?api_key=key-s3cret")
        .with_header("Authorization", "Bearer tok-s3cret")
        .with_query("password", "pw-s3cret");
    assert_hidden(&format!("{request:?}"), &secrets);
}

#[tokio::test]
async fn an_error_body_echoing_the_credential_is_scrubbed() {
    let server = MockServer::start().await;
    Mock::given(path("/echo"))
        .respond_with(|r: &Request| {
            let sent = r.headers.get("authorization").unwrap().to_str().unwrap();
            ResponseTemplate::new(401).set_body_string(format!("token rejected: {sent}"))
        })
        .mount(&server)
        .await;
    let error = client(Auth::Bearer {
        token: Secret::new("tok-echoed-1"),
    })
    .execute(&HttpRequest::get(format!("{}/echo", server.uri())))
    .await
    .unwrap_err();
    assert_eq!(
        error.context_value("body"),
        Some("token rejected: Bearer ***")
    );
    assert_hidden(&format!("{error} {error:?}"), &["tok-echoed-1"]);
}

/// A token endpoint handing out `tok-1`, `tok-2`, ... valid for `expires_in` seconds.
struct TokenEndpoint {
    issued: Arc<AtomicUsize>,
    expires_in: u64,
}

impl Respond for TokenEndpoint {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": format!("tok-{n}"),
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }))
    }
}

/// Answers 200 with the bearer token it got, or 401 for the tokens in `rejected`.
struct DataEndpoint {
    rejected: Vec<&'static str>,
}

impl Respond for DataEndpoint {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let auth = r
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let token = auth.strip_prefix("Bearer ").unwrap_or_default();
        if token.is_empty() || self.rejected.contains(&token) {
            ResponseTemplate::new(401)
        } else {
            ResponseTemplate::new(200).set_body_string(token)
        }
    }
}

async fn oauth_server(
    expires_in: u64,
    rejected: Vec<&'static str>,
) -> (MockServer, Arc<AtomicUsize>) {
    let server = MockServer::start().await;
    let issued = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(TokenEndpoint {
            issued: issued.clone(),
            expires_in,
        })
        .mount(&server)
        .await;
    Mock::given(path("/data"))
        .respond_with(DataEndpoint { rejected })
        .mount(&server)
        .await;
    (server, issued)
}

fn oauth(server: &MockServer, client_auth: ClientAuth) -> Auth {
    Auth::OAuth2ClientCredentials {
        token_url: format!("{}/token", server.uri()),
        client_id: "client-1".into(),
        client_secret: Secret::new("cs-oauth-1"),
        scopes: vec!["read".into(), "write".into()],
        audience: Some("https://api".into()),
        client_auth,
    }
}

async fn fetch_data(client: &HttpClient, server: &MockServer) -> String {
    let response = client
        .execute(&HttpRequest::get(format!("{}/data", server.uri())))
        .await
        .unwrap();
    String::from_utf8(response.body.to_vec()).unwrap()
}

#[tokio::test]
async fn oauth2_token_is_fetched_once_for_many_requests() {
    let (server, issued) = oauth_server(3600, vec![]).await;
    let client = client(oauth(&server, ClientAuth::Basic));
    // Concurrent first requests all find the cache empty: one fetch serves them all.
    let clones: Vec<HttpClient> = (0..8).map(|_| client.clone()).collect();
    let tokens = futures::future::join_all(clones.iter().map(|c| fetch_data(c, &server))).await;
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(fetch_data(&client, &server).await, "tok-1");
    assert_eq!(issued.load(Ordering::SeqCst), 1);

    let token_requests = requests_to(&server, "/token").await;
    let form = String::from_utf8(token_requests[0].body.clone()).unwrap();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("scope=read+write"), "{form}");
    assert!(form.contains("audience=https%3A%2F%2Fapi"), "{form}");
    assert!(!form.contains("cs-oauth-1"), "{form}");
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "client-1:cs-oauth-1"
        )
    );
    assert_eq!(
        token_requests[0].headers["authorization"],
        expected.as_str()
    );
}

#[tokio::test]
async fn oauth2_client_secret_can_go_in_the_form_body() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .and(body_string_contains("client_id=client-1"))
        .and(body_string_contains("client_secret=cs-oauth-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"access_token":"tok-b"}"#))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/data"))
        .and(bearer_token("tok-b"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(oauth(&server, ClientAuth::Body));
    client
        .execute(&HttpRequest::get(format!("{}/data", server.uri())))
        .await
        .unwrap();
    let token_requests = requests_to(&server, "/token").await;
    assert!(token_requests[0].headers.get("authorization").is_none());
}

#[tokio::test(start_paused = true)]
async fn oauth2_token_is_refreshed_before_it_expires() {
    let (server, issued) = oauth_server(3600, vec![]).await;
    let client = client(oauth(&server, ClientAuth::Basic));
    assert_eq!(fetch_data(&client, &server).await, "tok-1");
    tokio::time::advance(Duration::from_secs(3500)).await;
    assert_eq!(fetch_data(&client, &server).await, "tok-1");
    // 30 s before expiry the token is due.
    tokio::time::advance(Duration::from_secs(71)).await;
    assert_eq!(fetch_data(&client, &server).await, "tok-2");
    assert_eq!(fetch_data(&client.clone(), &server).await, "tok-2");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oauth2_401_refreshes_the_token_once_then_succeeds() {
    let (server, issued) = oauth_server(3600, vec!["tok-1"]).await;
    let client = client(oauth(&server, ClientAuth::Basic));
    assert_eq!(fetch_data(&client, &server).await, "tok-2");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(requests_to(&server, "/data").await.len(), 2);
    assert_eq!(fetch_data(&client, &server).await, "tok-2");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oauth2_persistent_401_is_permanent_after_one_refresh() {
    let (server, issued) = oauth_server(3600, vec!["tok-1", "tok-2", "tok-3"]).await;
    let client = client(oauth(&server, ClientAuth::Basic));
    let error = client
        .execute(&HttpRequest::get(format!("{}/data", server.uri())))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert_eq!(error.retry_class(), RetryClass::Permanent);
    assert_eq!(error.context_value("status"), Some("401"));
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(requests_to(&server, "/data").await.len(), 2);
    assert_hidden(
        &format!("{error} {error:?}"),
        &["cs-oauth-1", "tok-1", "tok-2"],
    );
}

#[tokio::test]
async fn token_endpoint_failures_are_typed_and_keep_the_secret_out() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(|r: &Request| {
            // A careless server echoing the client credentials it got.
            let sent = r.headers.get("authorization").unwrap().to_str().unwrap();
            let body = String::from_utf8_lossy(&r.body);
            ResponseTemplate::new(401).set_body_string(format!(
                r#"{{"error":"invalid_client","got":"{sent} {body}"}}"#
            ))
        })
        .mount(&server)
        .await;
    let client = client(oauth(&server, ClientAuth::Basic));
    let error = client
        .execute(&HttpRequest::get(format!("{}/data", server.uri())))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert_eq!(error.retry_class(), RetryClass::Permanent);
    assert_eq!(error.context_value("step"), Some("oauth2 token request"));
    assert!(error
        .context_value("body")
        .unwrap()
        .contains("invalid_client"));
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "client-1:cs-oauth-1",
    );
    assert_hidden(&format!("{error} {error:?}"), &["cs-oauth-1", &encoded]);
    assert!(requests_to(&server, "/data").await.is_empty());
}

#[tokio::test]
async fn malformed_token_responses_are_invalid_input() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"token":"tok-x"}"#))
        .mount(&server)
        .await;
    let error = client(oauth(&server, ClientAuth::Basic))
        .execute(&HttpRequest::get(format!("{}/data", server.uri())))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert_hidden(&format!("{error} {error:?}"), &["tok-x", "cs-oauth-1"]);
}

#[tokio::test]
async fn invalid_auth_is_a_config_error_before_any_request() {
    let server = MockServer::start().await;
    let client = client(Auth::ApiKey {
        name: "bad name".into(),
        value: Secret::new("k"),
        location: ApiKeyLocation::Header,
    });
    let error = client
        .execute(&HttpRequest::get(server.uri()))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(server.received_requests().await.unwrap().is_empty());
}
