//! Encryption at rest and keyed search hashes.
//!
//! - A value is sealed with AES-256-GCM under the active key, with a fresh random 96-bit
//!   nonce, and stored as `<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`. The key id makes
//!   rotation possible: values sealed under an older key still open as long as that key is
//!   configured, while new writes use the active one.
//! - The associated data names the row and column a value belongs to, so a ciphertext copied
//!   into another row or column does not open.
//! - Searchable values (identifier, folded family name) are also stored as HMAC-SHA256 under
//!   the search key, with a purpose prefix so equal strings in different roles hash apart.

use std::{collections::BTreeMap, fmt, sync::Arc};

use aes_gcm::{
    Aes256Gcm,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use anyhow::{Context, anyhow, bail, ensure};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::PatientSettings;

/// The key id of the built-in development key.
pub const DEVELOPMENT_KEY_ID: &str = "dev";
/// The built-in development encryption key (base64 of 32 bytes). Public, so production
/// refuses it ([`crate::check_production`]).
pub const DEVELOPMENT_ENCRYPTION_KEY: &str = "dGVzc2VyYS1kZXYtcGF0aWVudC1rZXktMzItYnl0ZXM=";
/// The built-in development search key (base64 of 40 bytes); production refuses it too.
pub const DEVELOPMENT_SEARCH_KEY: &str = "dGVzc2VyYS1kZXYtcGF0aWVudC1zZWFyY2gta2V5LTMyLWJ5dGVzIQ==";

const NONCE_LEN: usize = 12;

/// Base64 in any of the usual alphabets, with or without padding.
pub(crate) fn decode_key(encoded: &str) -> Option<Vec<u8>> {
    let s = encoded.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(s).ok())
}

/// The checked key material of [`PatientSettings`].
pub(crate) struct KeyMaterial {
    pub encryption: BTreeMap<String, Vec<u8>>,
    pub active: String,
    pub search: Vec<u8>,
}

impl KeyMaterial {
    /// # Errors
    /// What is malformed, naming the setting (never a key's value).
    pub fn parse(settings: &PatientSettings) -> anyhow::Result<Self> {
        ensure!(
            !settings.encryption_keys.is_empty(),
            "modules.patient.encryption_keys must name at least one key"
        );
        let mut encryption = BTreeMap::new();
        for (id, encoded) in &settings.encryption_keys {
            ensure!(
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "modules.patient.encryption_keys: key id {id:?} may only contain ASCII letters, \
                 digits, '-', '_' and '.'"
            );
            let key = decode_key(encoded)
                .with_context(|| format!("modules.patient.encryption_keys.{id} is not base64"))?;
            ensure!(
                key.len() == 32,
                "modules.patient.encryption_keys.{id} must be 32 bytes (AES-256), not {}",
                key.len()
            );
            encryption.insert(id.clone(), key);
        }
        ensure!(
            encryption.contains_key(&settings.active_key),
            "modules.patient.active_key {:?} is not one of modules.patient.encryption_keys",
            settings.active_key
        );
        let search =
            decode_key(&settings.search_key).context("modules.patient.search_key is not base64")?;
        ensure!(
            search.len() >= 32,
            "modules.patient.search_key must be at least 32 bytes, not {}",
            search.len()
        );
        Ok(Self {
            encryption,
            active: settings.active_key.clone(),
            search,
        })
    }
}

/// Seals and opens personal data, and computes search hashes. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    ciphers: BTreeMap<String, Aes256Gcm>,
    active: String,
    search_key: Vec<u8>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("keys", &self.inner.ciphers.keys().collect::<Vec<_>>())
            .field("active", &self.inner.active)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// # Errors
    /// Malformed settings (see [`KeyMaterial::parse`]).
    pub fn new(settings: &PatientSettings) -> anyhow::Result<Self> {
        let material = KeyMaterial::parse(settings)?;
        let mut ciphers = BTreeMap::new();
        for (id, key) in &material.encryption {
            let cipher = Aes256Gcm::new_from_slice(key)
                .map_err(|_| anyhow!("encryption key {id} is not 32 bytes"))?;
            ciphers.insert(id.clone(), cipher);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                ciphers,
                active: material.active,
                search_key: material.search,
            }),
        })
    }

    /// Encrypts `plaintext` under the active key, bound to `context` (row and column).
    ///
    /// # Errors
    /// Only if the cipher fails, which AES-GCM does not for inputs of sane size.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> anyhow::Result<String> {
        let cipher = self
            .inner
            .ciphers
            .get(&self.inner.active)
            .ok_or_else(|| anyhow!("the active key is not configured"))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("encryption failed for {context}"))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(format!("{}:{}", self.inner.active, STANDARD.encode(bytes)))
    }

    /// Encrypts a string; see [`Vault::seal`].
    ///
    /// # Errors
    /// As [`Vault::seal`].
    pub fn seal_str(&self, context: &str, plaintext: &str) -> anyhow::Result<String> {
        self.seal(context, plaintext.as_bytes())
    }

    /// Decrypts a value sealed under any configured key for the same `context`.
    ///
    /// # Errors
    /// An unknown key id, a malformed value, or one that does not authenticate (wrong
    /// context, wrong key, tampered). The message names the context, never the content.
    pub fn open(&self, context: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let (key_id, encoded) = sealed
            .split_once(':')
            .ok_or_else(|| anyhow!("{context} is not a sealed value"))?;
        let cipher = self.inner.ciphers.get(key_id).ok_or_else(|| {
            anyhow!("{context} is sealed under key {key_id:?}, which is not configured")
        })?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| anyhow!("{context} is not valid base64"))?;
        if bytes.len() < NONCE_LEN + 16 {
            bail!("{context} is too short to be a sealed value");
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("{context} does not decrypt: wrong key or tampered value"))
    }

    /// Decrypts a string; see [`Vault::open`].
    ///
    /// # Errors
    /// As [`Vault::open`], or when the plaintext is not UTF-8.
    pub fn open_str(&self, context: &str, sealed: &str) -> anyhow::Result<String> {
        String::from_utf8(self.open(context, sealed)?)
            .map_err(|_| anyhow!("{context} does not decrypt to text"))
    }

    /// The keyed hash a searchable value is found by: hex HMAC-SHA256 of
    /// `purpose NUL value` under the search key.
    pub fn search_hash(&self, purpose: &str, value: &str) -> String {
        // HMAC accepts keys of any length; this never fails.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.search_key) else {
            return String::new();
        };
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(keys: &[(&str, &[u8; 32])], active: &str) -> PatientSettings {
        PatientSettings {
            encryption_keys: keys
                .iter()
                .map(|(id, key)| ((*id).to_owned(), STANDARD.encode(key)))
                .collect(),
            active_key: active.into(),
            search_key: STANDARD.encode([7u8; 32]),
        }
    }

    #[test]
    fn a_sealed_value_opens_in_its_context_only() {
        let vault = Vault::new(&settings(&[("k1", &[1; 32])], "k1")).unwrap();
        let sealed = vault.seal_str("patient:1:name", "Zebulon").unwrap();
        assert!(sealed.starts_with("k1:"), "{sealed}");
        assert!(!sealed.contains("Zebulon"));
        assert_eq!(
            vault.open_str("patient:1:name", &sealed).unwrap(),
            "Zebulon"
        );
        let err = vault.open_str("patient:2:name", &sealed).unwrap_err();
        assert!(!err.to_string().contains("Zebulon"), "{err}");
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let vault = Vault::new(&settings(&[("k1", &[1; 32])], "k1")).unwrap();
        let a = vault.seal_str("c", "same").unwrap();
        let b = vault.seal_str("c", "same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn values_sealed_under_a_retired_key_still_open_after_rotation() {
        let old = Vault::new(&settings(&[("k1", &[1; 32])], "k1")).unwrap();
        let sealed = old.seal_str("c", "secret").unwrap();
        let rotated = Vault::new(&settings(&[("k1", &[1; 32]), ("k2", &[2; 32])], "k2")).unwrap();
        assert_eq!(rotated.open_str("c", &sealed).unwrap(), "secret");
        assert!(rotated.seal_str("c", "new").unwrap().starts_with("k2:"));
        let without_k1 = Vault::new(&settings(&[("k2", &[2; 32])], "k2")).unwrap();
        let err = without_k1.open_str("c", &sealed).unwrap_err();
        assert!(err.to_string().contains("\"k1\""), "{err}");
    }

    #[test]
    fn a_tampered_value_does_not_open() {
        let vault = Vault::new(&settings(&[("k1", &[1; 32])], "k1")).unwrap();
        let sealed = vault.seal_str("c", "secret").unwrap();
        let (id, body) = sealed.split_once(':').unwrap();
        let mut bytes = STANDARD.decode(body).unwrap();
        bytes[NONCE_LEN] ^= 1;
        let tampered = format!("{id}:{}", STANDARD.encode(bytes));
        assert!(vault.open("c", &tampered).is_err());
    }

    #[test]
    fn search_hashes_are_keyed_and_separated_by_purpose() {
        let vault = Vault::new(&settings(&[("k1", &[1; 32])], "k1")).unwrap();
        let h = vault.search_hash("mrn", "MRN-1");
        assert_eq!(h.len(), 64);
        assert_eq!(h, vault.search_hash("mrn", "MRN-1"));
        assert_ne!(h, vault.search_hash("family", "MRN-1"));
        let mut other = settings(&[("k1", &[1; 32])], "k1");
        other.search_key = STANDARD.encode([8u8; 32]);
        assert_ne!(h, Vault::new(&other).unwrap().search_hash("mrn", "MRN-1"));
    }

    #[test]
    fn malformed_settings_are_named_without_their_values() {
        let mut s = settings(&[("k1", &[1; 32])], "k2");
        assert!(
            Vault::new(&s)
                .unwrap_err()
                .to_string()
                .contains("active_key")
        );
        s.active_key = "k1".into();
        s.encryption_keys
            .insert("k1".into(), STANDARD.encode([1u8; 16]));
        assert!(Vault::new(&s).unwrap_err().to_string().contains("32 bytes"));
        s.encryption_keys.insert("k1".into(), "not base64!".into());
        assert!(Vault::new(&s).unwrap_err().to_string().contains("base64"));
        let mut s = settings(&[("k1", &[1; 32])], "k1");
        s.search_key = STANDARD.encode([1u8; 16]);
        assert!(
            Vault::new(&s)
                .unwrap_err()
                .to_string()
                .contains("search_key")
        );
        let mut s = settings(&[("k:1", &[1; 32])], "k:1");
        s.active_key = "k:1".into();
        assert!(Vault::new(&s).is_err());
    }
}
