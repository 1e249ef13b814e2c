//! How `chat-client` decides to trust a server (SPEC section 10), in this order:
//!
//! 1. `--tls-fingerprint`: exactly that certificate, whatever signed it; once it
//!    is accepted it is kept in `known_hosts` for this host and port.
//! 2. A certificate that chains to the system's roots (or `--tls-ca`) and names
//!    the host: accepted, renewals included.
//! 3. A certificate kept in `known_hosts` for this host and port: accepted if it
//!    is the same one, refused loudly, as `ssh` does, if it changed.
//! 4. Anything else (a self-signed server seen for the first time) is refused with
//!    its fingerprint and the flag that accepts it, for the student to compare
//!    with what the instructor shows.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{fingerprint, provider, read_certs, TlsError};

/// Fingerprints accepted per `host:port`, one `host:port FINGERPRINT` a line.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
}

impl KnownHosts {
    /// The file at `path`.
    pub fn at(path: PathBuf) -> KnownHosts {
        KnownHosts { path }
    }

    /// `$XDG_CONFIG_HOME/classchat/known_hosts`, else `~/.config/classchat/known_hosts`.
    pub fn default_place() -> Option<KnownHosts> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
                Some(PathBuf::from(home).join(".config"))
            })?;
        Some(KnownHosts::at(config.join("classchat").join("known_hosts")))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fingerprint kept for `host_port`.
    pub fn get(&self, host_port: &str) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        text.lines().find_map(|line| {
            let (name, print) = line.split_once(' ')?;
            (name == host_port).then(|| print.trim().to_owned())
        })
    }

    /// Keeps `print` for `host_port`, replacing what was kept for it.
    pub fn set(&self, host_port: &str, print: &str) -> std::io::Result<()> {
        let old = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut text: String = old
            .lines()
            .filter(|line| line.split_once(' ').map(|(n, _)| n) != Some(host_port))
            .map(|line| format!("{line}\n"))
            .collect();
        text.push_str(&format!("{host_port} {print}\n"));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.path, text)
    }
}

/// What the client was told to trust.
pub struct Trust {
    /// `--tls-ca`, else the system's roots (none found: `None`).
    pub roots: Option<RootCertStore>,
    /// `--tls-fingerprint`, normalised by [`super::parse_fingerprint`].
    pub pinned: Option<String>,
    /// Where accepted fingerprints are kept, to compare with.
    pub known: Option<KnownHosts>,
}

impl Trust {
    /// The roots of `--tls-ca FILE`.
    pub fn ca_file(path: &Path) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in read_certs(path)? {
            roots.add(cert)?;
        }
        Ok(roots)
    }

    /// The system's roots, if any can be found.
    pub fn system_roots() -> Option<RootCertStore> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        (added > 0).then_some(roots)
    }
}

/// Why a server's certificate was refused, for the message the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not signed by a known CA and never accepted here.
    Unknown {
        /// The certificate's fingerprint.
        offered: String,
    },
    /// Not the one kept in `known_hosts`.
    Changed {
        /// What `known_hosts` holds.
        expected: String,
        /// The certificate's fingerprint.
        offered: String,
    },
    /// Not the one given with `--tls-fingerprint`.
    NotPinned {
        /// The flag's fingerprint.
        expected: String,
        /// The certificate's fingerprint.
        offered: String,
    },
}

/// The verifier of [`Trust`]; after a failed handshake it tells why
/// ([`Verifier::refusal`]). It never writes `known_hosts`: the client keeps a
/// pinned fingerprint once the handshake it was given for has succeeded.
#[derive(Debug)]
pub struct Verifier {
    host_port: String,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pinned: Option<String>,
    known: Option<KnownHosts>,
    provider: Arc<CryptoProvider>,
    refusal: Mutex<Option<Refusal>>,
}

impl Verifier {
    /// A verifier for the server at `host_port`.
    pub fn new(trust: Trust, host_port: &str) -> Result<Arc<Verifier>, TlsError> {
        let provider = provider();
        let webpki = match trust.roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Arc::new(Verifier {
            host_port: host_port.to_owned(),
            webpki,
            pinned: trust.pinned,
            known: trust.known,
            provider,
            refusal: Mutex::new(None),
        }))
    }

    /// A client configuration that verifies with this.
    pub fn client_config(self: &Arc<Self>) -> ClientConfig {
        ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth()
    }

    /// Why the last certificate was refused.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn refuse(&self, refusal: Refusal) -> Result<ServerCertVerified, rustls::Error> {
        let text = format!("{refusal:?}");
        *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
        Err(rustls::Error::General(text))
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let offered = fingerprint(end_entity.as_ref());
        if let Some(expected) = &self.pinned {
            if *expected != offered {
                let (expected, offered) = (expected.clone(), offered);
                return self.refuse(Refusal::NotPinned { expected, offered });
            }
            return Ok(ServerCertVerified::assertion());
        }
        if let Some(webpki) = &self.webpki {
            let verified =
                webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
            if verified.is_ok() {
                return verified;
            }
        }
        match self.known.as_ref().and_then(|k| k.get(&self.host_port)) {
            Some(expected) if expected == offered => Ok(ServerCertVerified::assertion()),
            Some(expected) => self.refuse(Refusal::Changed { expected, offered }),
            None => self.refuse(Refusal::Unknown { offered }),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A verifier that accepts any certificate: for load tests on one's own server,
/// where what is measured is the cost of TLS, not who is at the other end.
#[derive(Debug)]
pub struct AcceptAnything(Arc<CryptoProvider>);

impl AcceptAnything {
    /// A client configuration that accepts any certificate.
    pub fn client_config() -> ClientConfig {
        let provider = provider();
        ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
            .with_no_client_auth()
    }
}

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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
