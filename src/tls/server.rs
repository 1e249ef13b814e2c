//! The certificate every TLS listener presents. It is held behind a lock that
//! each new handshake reads ([`Certificates`] is the rustls certificate
//! resolver), so a renewed certificate is served to the next connection while
//! established ones go on with the keys they agreed. A pair that does not load is
//! logged and the one in use kept: a certbot renewal that writes the certificate a
//! moment before its key never leaves the server without one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{fingerprint, provider, read_certs, read_key, TlsError};

/// How often the files are checked for a change.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// How long a client has for the TLS handshake; it counts against the handshake
/// budget meanwhile, like a client that has not logged in.
pub const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// The certificate and key in use, and the files they come from.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Loads the pair; fails if either file is unreadable or they do not match.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificates>, TlsError> {
        let current = load_pair(cert, key)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// The pair in use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The SHA-256 fingerprint of the certificate in use.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.current().cert[0].as_ref())
    }

    /// The DNS names the certificate in use is for (its subject alternative names).
    pub fn names(&self) -> Vec<String> {
        let current = self.current();
        match webpki::EndEntityCert::try_from(&current.cert[0]) {
            Ok(cert) => cert.valid_dns_names().map(str::to_owned).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Reads the files again; on success the next handshake uses the new pair.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        Ok(())
    }

    /// An acceptor for the listeners: TLS 1.2 and 1.3 with rustls's default
    /// ciphers, no client certificates, this resolver's pair.
    pub fn acceptor(self: &Arc<Self>) -> TlsAcceptor {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        TlsAcceptor::from(Arc::new(config))
    }

    /// Reloads on SIGHUP and whenever either file's modification time or size
    /// changes, until `stop` is cancelled.
    pub async fn keep_current(self: Arc<Self>, stop: CancellationToken) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGHUP; certificate changes are still noticed");
                None
            }
        };
        let mut seen = self.stamps();
        loop {
            let why = tokio::select! {
                _ = stop.cancelled() => return,
                _ = async { match hangup.as_mut() {
                    Some(hangup) => { hangup.recv().await; }
                    None => std::future::pending().await,
                } } => "SIGHUP",
                _ = tokio::time::sleep(CHECK_EVERY) => {
                    let now = self.stamps();
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "a changed file"
                }
            };
            match self.reload() {
                Ok(()) => tracing::info!(
                    fingerprint = %self.fingerprint(),
                    "TLS certificate read again after {why}"
                ),
                Err(err) => tracing::warn!(
                    %err,
                    "TLS certificate not read again after {why}; keeping the one in use"
                ),
            }
        }
    }

    fn stamps(&self) -> [Option<(SystemTime, u64)>; 2] {
        let stamp = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        [stamp(&self.cert), stamp(&self.key)]
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A certificate chain and its key, checked to belong together.
fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs(cert)?;
    let key = read_key(key)?;
    Ok(CertifiedKey::from_der(certs, key, &provider())?)
}
