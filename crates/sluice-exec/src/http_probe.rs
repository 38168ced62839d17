//! The `http:` health probe: one GET from the controller, over reqwest on rustls (no OpenSSL).
//!
//! Trust: an `https://` URL's certificate is verified against the system's trust store
//! (rustls-native-certs: the roots the operating system trusts, so an internal authority the
//! machine already trusts works, which Mozilla's bundle compiled in by webpki-roots would not
//! know), or against the check's own `ca_file` instead (its PEM is sealed in the artifact).
//! `insecure: true` accepts any certificate (the review warns, `insecure_tls`); the signatures
//! of the handshake are still checked, so the connection is TLS, just not authenticated.
//!
//! A redirect is the answer that counts unless the check says `follow_redirects: true` (a
//! health endpoint that redirects is usually a misconfiguration, e.g. to a login page). No proxy
//! from the environment is used: the check goes to the host it names.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::redirect::Policy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sluice_plan::HttpOptions;

/// At most this much of a body is read to look for `body_contains`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Redirects followed at most with `follow_redirects: true`.
const MAX_REDIRECTS: usize = 10;

/// Why a probe could not be sent or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpProbeError {
    #[error("ca_file {path}: {problem}")]
    CaFile { path: String, problem: String },
    #[error(
        "the system trust store has no usable root certificate ({0}); install ca-certificates or give the check a ca_file"
    )]
    NoSystemRoots(String),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The request failed: the whole chain of causes, outermost first.
    #[error("{0}")]
    Request(String),
}

/// What a probe found, and whether it passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpVerdict {
    pub passed: bool,
    pub detail: String,
}

/// GETs `url` and judges the answer by `expect_status` (any 2xx when `None`) and the options.
pub async fn probe_http(
    url: &str,
    expect_status: Option<u16>,
    options: &HttpOptions,
    timeout: Duration,
) -> Result<HttpVerdict, HttpProbeError> {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(options)?)
        .redirect(if options.follow_redirects {
            Policy::limited(MAX_REDIRECTS)
        } else {
            Policy::none()
        })
        .no_proxy()
        .timeout(timeout)
        .user_agent("sluice")
        .build()
        .map_err(|e| HttpProbeError::Request(causes(&e)))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| HttpProbeError::Request(causes(&e)))?;
    let status = response.status().as_u16();
    let expected = match expect_status {
        Some(code) => code.to_string(),
        None => "2xx".to_string(),
    };
    let status_ok = match expect_status {
        Some(code) => status == code,
        None => response.status().is_success(),
    };
    if !status_ok {
        let mut detail = format!("HTTP {status} (expected {expected})");
        if response.status().is_redirection() && !options.follow_redirects {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("?");
            detail.push_str(&format!(
                ": a redirect to {to}, not followed (`follow_redirects: true` follows it)"
            ));
        }
        return Ok(HttpVerdict {
            passed: false,
            detail,
        });
    }
    let Some(wanted) = &options.body_contains else {
        return Ok(HttpVerdict {
            passed: true,
            detail: format!("HTTP {status} (expected {expected})"),
        });
    };
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(HttpProbeError::Request(causes(&e))),
        }
    }
    body.truncate(MAX_BODY_BYTES);
    let found = memmem(&body, wanted.as_bytes());
    // The body itself is not shown: it comes from the host and may say anything.
    let detail = if found {
        format!("HTTP {status}, the body contains {wanted:?}")
    } else {
        format!(
            "HTTP {status}, but the body ({} bytes read) does not contain {wanted:?}",
            body.len()
        )
    };
    Ok(HttpVerdict {
        passed: found,
        detail,
    })
}

fn memmem(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// An error and its sources, `a: b: c`, each said once (reqwest and hyper repeat their inner
/// error's text in their own).
fn causes(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS client configuration a check's options ask for.
fn tls_config(options: &HttpOptions) -> Result<ClientConfig, HttpProbeError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    if options.insecure {
        let verifier = AnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        };
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth());
    }
    let roots = match &options.ca_file {
        Some(ca) => roots_from_pem(&ca.path, &ca.pem)?,
        None => system_roots()?.as_ref().clone(),
    };
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

fn roots_from_pem(path: &str, pem: &str) -> Result<RootCertStore, HttpProbeError> {
    let problem = |problem: String| HttpProbeError::CaFile {
        path: path.to_string(),
        problem,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| problem(format!("not a PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| problem(format!("not a usable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(problem("holds no certificate".to_string()));
    }
    Ok(roots)
}

/// The system's roots, read once per process.
fn system_roots() -> Result<&'static Arc<RootCertStore>, HttpProbeError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    let loaded = ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "none found".to_string());
            return Err(why);
        }
        Ok(Arc::new(roots))
    });
    loaded
        .as_ref()
        .map_err(|why| HttpProbeError::NoSystemRoots(why.clone()))
}

/// `insecure: true`: any certificate for any name, still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
