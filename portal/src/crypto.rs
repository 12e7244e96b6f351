//! Secrets at rest and one-time tokens.
//!
//! `SecretBox` seals bytes with XChaCha20-Poly1305 under the platform key (random 24-byte nonce
//! per message, stored in front of the ciphertext). Tokens handed to people (mail links, API
//! tokens, sessions) are 32 random bytes, URL-safe base64; only their SHA-256 is stored, so a
//! database or Redis dump yields nothing usable.
//!
//! It does not manage key rotation: one key per installation, kept in the config or in
//! `DATA_DIR/secret.key` (mode 0600).

use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the secret key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("sealed data is damaged or was sealed with another key")]
    Unseal,
    #[error("cannot read or create the key file {path}: {message}")]
    KeyFile { path: String, message: String },
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// A separate key for signing app access tokens, derived so that the sealing key itself never
    /// leaves this type (the gateway gets only this one).
    access_key: [u8; 32],
    /// Another derived key, for the signed URLs Nomad's clients download built revisions with.
    artifact_key: [u8; 32],
    /// Seals certificate private keys on their way through Redis to the gateway
    /// (`orchestrator::gateway::tls::open_sealed`), derived the same way.
    certificate_key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        let access_key: [u8; 32] = Sha256::digest([b"slipway app access key v1\0".as_slice(), &key].concat()).into();
        let artifact_key: [u8; 32] = Sha256::digest([b"slipway artifact url key v1\0".as_slice(), &key].concat()).into();
        let certificate_key: [u8; 32] = Sha256::digest([b"slipway gateway certificate key v1\0".as_slice(), &key].concat()).into();
        Ok(Self { cipher: XChaCha20Poly1305::new(&key.into()), access_key, artifact_key, certificate_key })
    }

    /// The key app access tokens and gateway cookies are signed with.
    pub fn access_key(&self) -> [u8; 32] {
        self.access_key
    }

    /// The key signed artifact URLs are made with (`cluster::sign_artifact`).
    pub fn artifact_key(&self) -> [u8; 32] {
        self.artifact_key
    }

    /// The key the gateway opens certificate private keys with.
    pub fn certificate_key(&self) -> [u8; 32] {
        self.certificate_key
    }

    /// Seals a certificate's private key for the gateway (base64, `tls::open_sealed`'s format).
    pub fn seal_for_gateway(&self, key_pem: &[u8]) -> String {
        let mut nonce = [0u8; orchestrator::gateway::tls::NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        orchestrator::gateway::tls::seal_with_nonce(&self.certificate_key, nonce, key_pem)
    }

    /// Reads the key file, or creates it with a fresh random key (mode 0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let key_error = |e: std::io::Error| CryptoError::KeyFile { path: path.display().to_string(), message: e.to_string() };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(key_error)?;
                }
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let text = base64::engine::general_purpose::STANDARD.encode(key);
                let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(key_error)?;
                file.write_all(text.as_bytes()).map_err(key_error)?;
                Self::from_base64(&text)
            }
            Err(e) => Err(key_error(e)),
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory data");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher.decrypt(XNonce::from_slice(nonce), ciphertext).map_err(|_| CryptoError::Unseal)
    }
}

/// A fresh random token: 32 bytes, URL-safe base64 without padding (43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The form in which a token is stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two strings in time independent of where they first differ (for CSRF tokens).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_with_the_same_key_only() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let other = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        let sealer = SecretBox::from_base64(&key).expect("valid key");
        let sealed = sealer.seal(b"verification link");
        assert!(!sealed.windows(4).any(|w| w == b"link"), "ciphertext must not contain the plaintext");
        assert_eq!(sealer.open(&sealed).expect("opens"), b"verification link");
        assert!(SecretBox::from_base64(&other).expect("valid").open(&sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().expect("non-empty") ^= 1;
        assert!(sealer.open(&tampered).is_err());
        assert_ne!(sealer.seal(b"x"), sealer.seal(b"x"), "nonces must differ");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(SecretBox::from_base64("short").is_err());
        assert!(SecretBox::from_base64(&base64::engine::general_purpose::STANDARD.encode([1u8; 31])).is_err());
    }

    #[test]
    fn key_file_is_created_once_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("slipway-key-{}", uuid::Uuid::new_v4()));
        let path = dir.join("secret.key");
        let first = SecretBox::load_or_create(&path).expect("created");
        let sealed = first.seal(b"x");
        let second = SecretBox::load_or_create(&path).expect("read back");
        assert_eq!(second.open(&sealed).expect("same key"), b"x");
        assert_eq!(std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn tokens_are_random_and_hashes_are_stable() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(constant_time_eq("abc", "abc") && !constant_time_eq("abc", "abd") && !constant_time_eq("abc", "ab"));
    }
}
