//! TLS on every port (SPEC section 10), with rustls and its `ring` provider: no
//! OpenSSL, nothing to install.
//!
//! - [`server`]: the certificate the listeners present, read again on SIGHUP or
//!   when its files change, without dropping a connection.
//! - [`session`]: a connection's TLS session on the chat ports, holding no
//!   buffer while it waits.
//! - [`client`]: how `chat-client` decides to trust a server: the system's roots,
//!   a CA file, or a pinned fingerprint kept in `known_hosts`.
//!
//! Here: reading PEM files and the SHA-256 fingerprint people compare by eye.

pub mod client;
pub mod server;
pub mod session;

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file holds no PEM item of the kind wanted, or a broken one.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the pair (unsupported key, key of another certificate).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider of every TLS connection classchat makes or accepts.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The certificates of a PEM file, the server's own first.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    let bad = |what: String| TlsError::Pem {
        path: path.display().to_string(),
        what,
    };
    let certs = certs.map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.display().to_string(),
        what: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key in it".into(),
            other => other.to_string(),
        },
    })
}

/// The SHA-256 fingerprint of a DER certificate as `openssl x509 -fingerprint
/// -sha256` prints it: uppercase hex pairs joined by colons.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A fingerprint as typed by a person: any case, with or without colons or a
/// `SHA256:` prefix; `None` unless it is 32 bytes of hex.
pub fn parse_fingerprint(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix("SHA256:")
        .or_else(|| text.strip_prefix("sha256:"))
        .unwrap_or(text);
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[i * 2..i * 2 + 2]).collect();
    Some(pairs.join(":"))
}

/// A new self-signed certificate for `hosts` (names or IP addresses), for a lab
/// without a CA: its PEM, its key's PEM, and its fingerprint.
pub struct SelfSigned {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate's SHA-256 fingerprint, for students to compare.
    pub fingerprint: String,
}

/// Makes a [`SelfSigned`] certificate naming `hosts`, the first as its common name.
pub fn self_signed(hosts: &[String]) -> Result<SelfSigned, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(
        rcgen::DnType::CommonName,
        hosts.first().cloned().unwrap_or_default(),
    );
    params.distinguished_name = name;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        fingerprint: fingerprint(cert.der()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_openssl_prints_them() {
        let printed = fingerprint(b"not really a certificate");
        assert_eq!(printed.len(), 32 * 3 - 1);
        assert!(printed
            .chars()
            .all(|c| c == ':' || c.is_ascii_digit() || c.is_ascii_uppercase()));
        let typed = printed.replace(':', "").to_lowercase();
        assert_eq!(parse_fingerprint(&typed).as_deref(), Some(printed.as_str()));
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{printed}")).as_deref(),
            Some(printed.as_str())
        );
        assert_eq!(parse_fingerprint("AB:CD"), None);
    }

    #[test]
    fn a_self_signed_pair_loads_and_its_fingerprint_is_the_servers() {
        let dir = tempfile::tempdir().unwrap();
        let made = self_signed(&["chat.lab".into(), "10.0.0.5".into()]).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &made.cert_pem).unwrap();
        std::fs::write(&key, &made.key_pem).unwrap();
        let loaded = server::Certificates::load(&cert, &key).unwrap();
        assert_eq!(loaded.fingerprint(), made.fingerprint);
        // A key of another certificate is refused, and the pair in use kept.
        let other = self_signed(&["other".into()]).unwrap();
        std::fs::write(&key, &other.key_pem).unwrap();
        assert!(loaded.reload().is_err());
        assert_eq!(loaded.fingerprint(), made.fingerprint);
        std::fs::write(&cert, &other.cert_pem).unwrap();
        loaded.reload().unwrap();
        assert_eq!(loaded.fingerprint(), other.fingerprint);
    }
}
