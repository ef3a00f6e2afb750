//! TLS: `sslmode=require` encrypts the session; `verify-full` refuses a certificate no trusted
//! root vouches for, with a clear error and no password in it. Skipped when the server has TLS
//! off (Debian's packages turn it on with a self-signed certificate).

use sync_core::ErrorKind;
use sync_store_postgres::{PostgresConfig, PostgresStore, SslMode};

fn with_param(url: &str, param: &str) -> String {
    format!("{url}{}{param}", if url.contains('?') { '&' } else { '?' })
}

async fn server_has_tls(url: &str) -> bool {
    let plain = PostgresStore::open(
        PostgresConfig::new(with_param(url, "sslmode=disable")).with_schema("sync_test_tls"),
    )
    .await;
    let (client, connection) =
        tokio_postgres::connect(&with_param(url, "sslmode=disable"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    drop(plain);
    client
        .query_one("SHOW ssl", &[])
        .await
        .unwrap()
        .get::<_, String>(0)
        == "on"
}

#[tokio::test]
async fn require_encrypts_and_verify_full_refuses_an_untrusted_certificate() {
    let Some(url) = std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return;
    };
    if !server_has_tls(&url).await {
        eprintln!("skipped: the server has ssl = off");
        return;
    }
    let required =
        PostgresConfig::new(with_param(&url, "sslmode=require")).with_schema("sync_test_tls");
    assert_eq!(required.ssl_mode().unwrap(), SslMode::Require);
    let store = PostgresStore::open(required).await.unwrap();
    assert!(
        store.check().await.unwrap().tls,
        "sslmode=require must encrypt the session"
    );
    let plain = PostgresStore::open(
        PostgresConfig::new(with_param(&url, "sslmode=disable")).with_schema("sync_test_tls"),
    )
    .await
    .unwrap();
    assert!(!plain.check().await.unwrap().tls);

    let secret = url.replacen("://postgres@", "://postgres:not-a-real-secret@", 1);
    let verified = PostgresConfig::new(with_param(&secret, "sslmode=verify-full"))
        .with_schema("sync_test_tls");
    let err = PostgresStore::open(verified).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Config,
        "a refused certificate is a configuration problem: {err}"
    );
    assert!(!err.is_transient(), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(
        shown.to_lowercase().contains("certificate")
            || shown.contains("tls")
            || shown.contains("connection"),
        "{shown}"
    );
    assert!(
        !shown.contains("not-a-real-secret"),
        "the password leaked: {shown}"
    );
    eprintln!("verify-full refused: {err}");
    store.drop_schema().await.unwrap();
}
