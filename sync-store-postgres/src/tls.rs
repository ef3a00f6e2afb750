//! TLS through rustls, honouring libpq's `sslmode`: `disable` (plain), `prefer` and `require`
//! (encrypted, certificate not checked, as libpq), `verify-ca` (the chain must lead to a trusted
//! root) and `verify-full` (and the certificate must name the host). Roots come from
//! `sslrootcert=<PEM file>` when given, else from the Mozilla roots (webpki-roots).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sync_core::{Error, Result};

use crate::config::{is_url, key_value_pairs, KeyValue};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, certificate not checked.
    Prefer,
    /// TLS required, certificate not checked.
    Require,
    /// TLS required, the certificate chain must lead to a trusted root.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

/// The URL without the TLS parameters tokio-postgres does not know, and those parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TlsSettings {
    pub(crate) url: String,
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<String>,
}

fn mode_of(value: &str) -> Result<SslMode> {
    Ok(match value {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => return Err(Error::config(format!("unknown sslmode {other:?}"))),
    })
}

/// Splits `sslmode` and `sslrootcert` out of a URL's query or out of the key-value form
/// (`host=h sslmode=require`); the mode defaults to `prefer`, as libpq's does.
pub(crate) fn parse(url: &str) -> Result<TlsSettings> {
    if is_url(url) {
        parse_url(url)
    } else {
        parse_key_values(url)
    }
}

fn parse_url(url: &str) -> Result<TlsSettings> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut root_cert, mut rest) = (SslMode::Prefer, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = mode_of(v)?,
            Some(("sslrootcert", v)) => root_cert = Some(v.to_string()),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok(TlsSettings {
        url,
        mode,
        root_cert,
    })
}

fn parse_key_values(text: &str) -> Result<TlsSettings> {
    let (mut mode, mut root_cert, mut rest) = (SslMode::Prefer, None, Vec::new());
    for part in key_value_pairs(text) {
        match part {
            KeyValue::Pair {
                key: "sslmode",
                value,
                ..
            } => mode = mode_of(&unquoted(value))?,
            KeyValue::Pair {
                key: "sslrootcert",
                value,
                ..
            } => root_cert = Some(unquoted(value)),
            // The other pairs, and text that is no pair (for tokio-postgres to report).
            KeyValue::Pair { text, .. } | KeyValue::Unreadable(text) => rest.push(text),
        }
    }
    Ok(TlsSettings {
        url: rest.join(" "),
        mode,
        root_cert,
    })
}

/// A key-value value as tokio-postgres reads it: quotes removed, backslash escapes applied.
fn unquoted(value: &str) -> String {
    let inner = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(root_cert: Option<&str>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                Error::config("cannot read sslrootcert")
                    .with_context("path", path)
                    .with_source(e)
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    Error::config("malformed sslrootcert")
                        .with_context("path", path)
                        .with_source(e)
                })?;
                store.add(cert).map_err(|e| {
                    Error::config("unusable sslrootcert")
                        .with_context("path", path)
                        .with_source(e)
                })?;
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

/// The rustls client configuration for a mode (`None` for `disable`).
pub(crate) fn client_config(settings: &TlsSettings) -> Result<Option<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("no usable TLS protocol version").with_source(e))?;
    let verifier: Arc<dyn ServerCertVerifier> = match settings.mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => Arc::new(EncryptOnly(provider())),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(settings.root_cert.as_deref())?),
                provider(),
            )
            .build()
            .map_err(|e| Error::config("cannot build the certificate verifier").with_source(e))?;
            if settings.mode == SslMode::VerifyFull {
                return Ok(Some(
                    builder.with_webpki_verifier(webpki).with_no_client_auth(),
                ));
            }
            Arc::new(ChainOnly(webpki))
        }
    };
    Ok(Some(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// `prefer`/`require`: the session is encrypted; the certificate is not checked (libpq's
/// meaning of these modes). Handshake signatures are still verified.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            })) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_rootcert_are_split_out_of_the_url() {
        let s =
            parse("postgres://u:p@h/db?sslmode=verify-full&application_name=x&sslrootcert=/ca.pem")
                .unwrap();
        assert_eq!(s.url, "postgres://u:p@h/db?application_name=x");
        assert_eq!(
            (s.mode, s.root_cert.as_deref()),
            (SslMode::VerifyFull, Some("/ca.pem"))
        );
        assert_eq!(parse("postgres://h/db").unwrap().mode, SslMode::Prefer);
        assert_eq!(
            parse("postgres://h/db?sslmode=disable").unwrap().url,
            "postgres://h/db"
        );
        assert!(parse("postgres://h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn sslmode_and_rootcert_are_split_out_of_the_key_value_form() {
        let s =
            parse("host=h sslmode = 'verify-full'\tuser='a b' sslrootcert=/ca\\ 1.pem").unwrap();
        assert_eq!(s.url, "host=h user='a b'");
        assert_eq!(
            (s.mode, s.root_cert.as_deref()),
            (SslMode::VerifyFull, Some("/ca 1.pem"))
        );
        assert_eq!(
            parse("host=h sslmode=require").unwrap().mode,
            SslMode::Require
        );
        assert_eq!(parse("host=h dbname=d").unwrap().mode, SslMode::Prefer);
        assert!(parse("host=h sslmode=sometimes").is_err());
        for (text, mode) in [
            ("host=h sslmode=require", SslMode::Require),
            ("host=h sslmode=verify-full", SslMode::VerifyFull),
            ("host=h sslmode=disable", SslMode::Disable),
        ] {
            let config = crate::PostgresConfig::new(text);
            assert_eq!(config.ssl_mode().unwrap(), mode, "{text}");
            let (pg, tls) = config.validate().unwrap();
            assert_eq!(tls.is_some(), mode != SslMode::Disable, "{text}");
            let expected = match mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                _ => tokio_postgres::config::SslMode::Require,
            };
            assert_eq!(pg.get_ssl_mode(), expected, "{text}");
        }
    }

    #[test]
    fn every_mode_but_disable_builds_a_tls_config() {
        for (mode, tls) in [
            ("disable", false),
            ("require", true),
            ("verify-ca", true),
            ("verify-full", true),
        ] {
            let settings = parse(&format!("postgres://h/db?sslmode={mode}")).unwrap();
            assert_eq!(client_config(&settings).unwrap().is_some(), tls, "{mode}");
        }
        let missing =
            parse("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem").unwrap();
        assert_eq!(
            client_config(&missing).unwrap_err().kind(),
            sync_core::ErrorKind::Config
        );
    }
}
