//! The `http:` probe against a real TLS server on 127.0.0.1 (rustls, tokio-rustls), with a test
//! certificate authority made by rcgen for each test: trust through `ca_file`, an unknown
//! authority, `insecure`, redirects and the body match.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sluice_exec::http_probe::{HttpProbeError, HttpVerdict, probe_http};
use sluice_plan::{CaFile, HttpOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A certificate authority and the PEM a `ca_file` would hold.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    fn ca_file(&self) -> CaFile {
        CaFile {
            path: "test-ca.pem".into(),
            pem: self.issuer.pem(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost, and its key.
    fn server_cert(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }
}

/// An HTTPS server with a certificate from `ca`: `/ok` answers 200 `status: ok`, `/down` 200
/// `status: down`, `/moved` a 301 to `/ok`, anything else 404.
async fn serve(ca: &TestCa) -> SocketAddr {
    let (cert, key) = ca.server_cert();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to answer.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body) = match path.as_str() {
                    "/ok" => ("200 OK", "", "status: ok"),
                    "/down" => ("200 OK", "", "status: down"),
                    "/moved" => ("301 Moved Permanently", "Location: /ok\r\n", ""),
                    _ => ("404 Not Found", "", "no such page"),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn trusting(ca: &TestCa) -> HttpOptions {
    HttpOptions {
        ca_file: Some(ca.ca_file()),
        ..HttpOptions::default()
    }
}

async fn get(addr: SocketAddr, path: &str, options: &HttpOptions) -> HttpVerdict {
    probe_http(&format!("https://{addr}{path}"), None, options, TIMEOUT)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_certificate_from_the_ca_file_passes() {
    let ca = TestCa::new("sluice test CA");
    let addr = serve(&ca).await;
    let verdict = get(addr, "/ok", &trusting(&ca)).await;
    assert!(verdict.passed, "{verdict:?}");
    assert_eq!(verdict.detail, "HTTP 200 (expected 2xx)");
    // An exact status is judged exactly.
    let exact = probe_http(
        &format!("https://{addr}/ok"),
        Some(204),
        &trusting(&ca),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(!exact.passed);
    assert_eq!(exact.detail, "HTTP 200 (expected 204)");
}

#[tokio::test]
async fn a_certificate_from_an_unknown_authority_fails_with_the_reason() {
    let ca = TestCa::new("sluice test CA");
    let addr = serve(&ca).await;
    // The system's roots do not know the test authority...
    let system = probe_http(
        &format!("https://{addr}/ok"),
        None,
        &HttpOptions::default(),
        TIMEOUT,
    )
    .await;
    // ...nor does another authority given as ca_file.
    let other = TestCa::new("another CA");
    let wrong = probe_http(
        &format!("https://{addr}/ok"),
        None,
        &trusting(&other),
        TIMEOUT,
    )
    .await;
    for result in [system, wrong] {
        match result {
            Err(HttpProbeError::Request(reason)) => assert!(
                reason.contains("invalid peer certificate") && reason.contains("UnknownIssuer"),
                "{reason}"
            ),
            other => panic!("expected a refused certificate, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn insecure_accepts_a_certificate_nobody_vouches_for() {
    let ca = TestCa::new("sluice test CA");
    let addr = serve(&ca).await;
    let options = HttpOptions {
        insecure: true,
        ..HttpOptions::default()
    };
    let verdict = get(addr, "/ok", &options).await;
    assert!(verdict.passed, "{verdict:?}");
}

#[tokio::test]
async fn a_redirect_is_not_followed_unless_asked() {
    let ca = TestCa::new("sluice test CA");
    let addr = serve(&ca).await;
    let verdict = get(addr, "/moved", &trusting(&ca)).await;
    assert!(!verdict.passed, "{verdict:?}");
    assert_eq!(
        verdict.detail,
        "HTTP 301 (expected 2xx): a redirect to /ok, not followed (`follow_redirects: true` follows it)"
    );
    let follow = HttpOptions {
        follow_redirects: true,
        ..trusting(&ca)
    };
    let verdict = get(addr, "/moved", &follow).await;
    assert!(verdict.passed, "{verdict:?}");
}

#[tokio::test]
async fn the_body_must_contain_the_text_asked_for() {
    let ca = TestCa::new("sluice test CA");
    let addr = serve(&ca).await;
    let options = HttpOptions {
        body_contains: Some("status: ok".into()),
        ..trusting(&ca)
    };
    let ok = get(addr, "/ok", &options).await;
    assert!(ok.passed, "{ok:?}");
    let down = get(addr, "/down", &options).await;
    assert!(!down.passed, "{down:?}");
    assert_eq!(
        down.detail,
        "HTTP 200, but the body (12 bytes read) does not contain \"status: ok\""
    );
    // A status that does not count is reported before the body is looked at.
    let missing = get(addr, "/nothing", &options).await;
    assert_eq!(missing.detail, "HTTP 404 (expected 2xx)");
}

#[tokio::test]
async fn a_ca_file_without_a_certificate_is_refused_before_connecting() {
    let options = HttpOptions {
        ca_file: Some(CaFile {
            path: "empty.pem".into(),
            pem: "not a certificate".into(),
        }),
        ..HttpOptions::default()
    };
    let err = probe_http("https://127.0.0.1:1/", None, &options, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "ca_file empty.pem: holds no certificate");
}
