//! TLS for the gateway: which certificate answers which name (SNI), and the rustls server
//! configuration the HTTPS listener uses (rustls with ring, the workspace's one TLS stack).
//!
//! `CertStore` is a `ResolvesServerCert`: a custom domain's own certificate when it has one
//! (published by the portal, replaced by `set_custom` without a restart), otherwise the apps
//! domain's wildcard certificate (from the configured PEM files, `set_wildcard`) for
//! `NAME.<apps domain>` and the apps domain itself. A name with neither gets no certificate, so the
//! handshake fails rather than showing a certificate for another name.
//!
//! - `validity`: `notBefore`/`notAfter` of a DER certificate (pure), for renewal decisions.
//! - `open_sealed` / `seal_with_nonce`: the sealing of private keys as they travel through Redis
//!   (XChaCha20-Poly1305, `nonce || ciphertext`, base64), under a key derived from the
//!   installation key. **Boundary** with the portal, which seals.
//!
//! It deliberately does not obtain certificates (the portal's ACME client does) or read Redis
//! (`domains::feed` does).

pub mod validity;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::Engine;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::route_table::{app_for_host, normalise_host, HostMatch};

pub use validity::{validity, Validity, ValidityError};

/// Length of the XChaCha20 nonce in front of every sealed key.
pub const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("certificate chain is not usable: {0}")]
    Chain(String),
    #[error("private key is not usable: {0}")]
    Key(String),
    #[error("the private key does not belong to the certificate")]
    Mismatch,
    #[error("sealed private key does not open (wrong installation key or damaged)")]
    Unseal,
}

/// A certificate chain (leaf first) and its private key, both PEM, checked to belong together.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain_pem).collect::<Result<_, _>>().map_err(|e| TlsError::Chain(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Chain("no CERTIFICATE block".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::Key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch),
        Err(error) => Err(TlsError::Key(error.to_string())),
    }
}

/// `certified_key` from two files (the configured wildcard certificate).
pub fn load_pem_files(chain_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| TlsError::Read { path: path.display().to_string(), message: e.to_string() });
    certified_key(&read(chain_path)?, &read(key_path)?)
}

/// Opens a key sealed by the portal: base64 of `nonce (24 bytes) || ciphertext`.
pub fn open_sealed(key: &[u8; 32], sealed_base64: &str) -> Result<Vec<u8>, TlsError> {
    let sealed = base64::engine::general_purpose::STANDARD.decode(sealed_base64.trim()).map_err(|_| TlsError::Unseal)?;
    if sealed.len() < NONCE_LEN {
        return Err(TlsError::Unseal);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into()).decrypt(XNonce::from_slice(nonce), ciphertext).map_err(|_| TlsError::Unseal)
}

/// Seals `plaintext` for `open_sealed` with a caller-chosen random `nonce` (the orchestrator has no
/// random source of its own; the portal passes fresh random bytes).
pub fn seal_with_nonce(key: &[u8; 32], nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> String {
    let ciphertext = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&nonce), plaintext)
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory input");
    base64::engine::general_purpose::STANDARD.encode([nonce.as_slice(), &ciphertext].concat())
}

/// The certificates the HTTPS listener can present, picked by SNI.
#[derive(Debug)]
pub struct CertStore {
    apps_domain: String,
    wildcard: RwLock<Option<Arc<CertifiedKey>>>,
    custom: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertStore {
    pub fn new(apps_domain: impl Into<String>) -> Arc<Self> {
        Arc::new(Self { apps_domain: apps_domain.into(), wildcard: RwLock::new(None), custom: RwLock::new(HashMap::new()) })
    }

    /// Replaces the apps domain's certificate; connections already open keep the old one.
    pub fn set_wildcard(&self, certified: CertifiedKey) {
        *self.wildcard.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(certified));
    }

    /// Replaces every custom domain's certificate at once (keys: lowercase domain names).
    pub fn set_custom(&self, certificates: HashMap<String, Arc<CertifiedKey>>) {
        *self.custom.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = certificates;
    }

    /// Whether a TLS handshake for `host` (a `Host` header or an SNI name) would find a certificate.
    pub fn covers(&self, host: &str) -> bool {
        self.pick(host).is_some()
    }

    fn pick(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let name = normalise_host(host)?;
        if let Some(certified) = self.custom.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&name) {
            return Some(Arc::clone(certified));
        }
        match app_for_host(&name, &self.apps_domain) {
            HostMatch::App(_) | HostMatch::Apex => self.wildcard.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
            HostMatch::Foreign => None,
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(client_hello.server_name()?)
    }
}

/// The HTTPS listener's configuration: TLS 1.3 and 1.2 with ring, HTTP/1.1 only (the gateway
/// does not speak HTTP/2), certificates from `store`.
pub fn server_config(store: Arc<CertStore>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests;
