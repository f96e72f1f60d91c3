//! The operator's master key, which wraps every tenant key the default
//! provider keeps (XChaCha20-Poly1305, the tenant's name bound in as
//! associated data, so a key file copied to another tenant's name does not
//! open).

use std::fmt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::TenantKey;
use crate::error::{Error, Result};
use crate::fs::sys;

/// Bytes of a wrapped key: the nonce, then the sealed key and its tag.
pub(super) const WRAPPED_LEN: usize = NONCE_LEN + TenantKey::LEN + 16;
const NONCE_LEN: usize = 24;

/// The key that wraps the tenant keys kept in a root: 32 bytes, given as
/// 64 hexadecimal digits. Wiped from memory when dropped.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
}

/// The most a master key file is read of: 64 hexadecimal digits, and room
/// for blanks around them.
const KEY_FILE_LIMIT: usize = 4096;

impl MasterKey {
    /// The environment variable [`from_env`](Self::from_env) reads the key
    /// from (64 hexadecimal digits).
    pub const ENV: &'static str = "TENANTED_MASTER_KEY";
    /// The environment variable naming a file that holds the key, read
    /// when [`ENV`](Self::ENV) is not set.
    pub const ENV_FILE: &'static str = "TENANTED_MASTER_KEY_FILE";

    /// A new random master key (show it once with
    /// [`to_hex`](Self::to_hex) and keep it where your secrets live).
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] when the operating system has no randomness.
    pub fn generate() -> Result<MasterKey> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|e| no_master(Path::new("(random)"), &e))?;
        Ok(MasterKey { bytes })
    }

    /// The key from its 64 hexadecimal digits (surrounding white space
    /// ignored).
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] when `hex` is not 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Result<MasterKey> {
        parse_hex(hex.trim()).ok_or_else(|| {
            no_master(
                Path::new("(hex)"),
                &"a master key is 64 hexadecimal digits (32 bytes)",
            )
        })
    }

    /// The key from `$TENANTED_MASTER_KEY`, or else from the file
    /// `$TENANTED_MASTER_KEY_FILE` names (both set: the variable, unless
    /// the file holds another key).
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] when neither is set or the key is malformed,
    /// [`Error::Io`] when the file cannot be read.
    pub fn from_env() -> Result<MasterKey> {
        let Ok(hex) = std::env::var(Self::ENV) else {
            return match std::env::var_os(Self::ENV_FILE) {
                Some(path) if path.is_empty() => Err(no_master(
                    Path::new(Self::ENV_FILE),
                    &"TENANTED_MASTER_KEY_FILE is set but empty: name the file holding the key, or unset it",
                )),
                Some(path) => Self::from_file(Path::new(&path)),
                None => Err(no_master(
                    Path::new(Self::ENV),
                    &"neither TENANTED_MASTER_KEY nor TENANTED_MASTER_KEY_FILE is set",
                )),
            };
        };
        let key = parse_hex(hex.trim())
            .ok_or_else(|| no_master(Path::new(Self::ENV), &"it is not 64 hexadecimal digits"))?;
        // Both given: a regular file holding another key is refused, since
        // which one was meant cannot be told (the variable won without a
        // word: an outside probe). Any other file is not looked at: the
        // variable wins, as it always did (a review: a file name left set
        // to a missing file, or a pipe, stopped or hung the command).
        let file = std::env::var_os(Self::ENV_FILE).map(std::path::PathBuf::from);
        let other = file
            .filter(|path| sys::metadata(path).is_ok_and(|m| m.is_file()))
            .and_then(|path| Self::from_file(&path).ok());
        match other {
            Some(other) if other.bytes != key.bytes => Err(no_master(
                Path::new(Self::ENV),
                &"TENANTED_MASTER_KEY and TENANTED_MASTER_KEY_FILE are both set, to different keys: set only one",
            )),
            _ => Ok(key),
        }
    }

    /// As [`from_env`](Self::from_env), but `None` when neither variable
    /// is set: a program that encrypts only when given a key must still
    /// refuse a key it was given and cannot use (a typo, a missing file),
    /// not go on without one and write plaintext tenants.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env), except that neither being set is
    /// `Ok(None)`.
    pub fn from_env_if_set() -> Result<Option<MasterKey>> {
        let set =
            std::env::var_os(Self::ENV).is_some() || std::env::var_os(Self::ENV_FILE).is_some();
        match set {
            true => Self::from_env().map(Some),
            false => Ok(None),
        }
    }

    /// The key from a file holding its 64 hexadecimal digits. A regular
    /// file that every user may read is used, with a warning (`tracing`)
    /// saying how to close it: refusing it would stop a service at a
    /// deploy whose secrets are mounted so.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read, [`Error::Encryption`]
    /// when it does not hold a key.
    pub fn from_file(path: &Path) -> Result<MasterKey> {
        let (text, open_to_others) = sys::read_secret(path, KEY_FILE_LIMIT)
            .map_err(|e| Error::io(None, path, "reading the master key file", e))?;
        if let Some(mode) = open_to_others {
            tracing::warn!(
                file = %path.display(),
                "the master key file {} may be read by every user of this machine (mode {mode:o}): take that away with `chmod o-r {}` (or `chmod 600` if the service owns it)",
                path.display(),
                path.display(),
            );
        }
        parse_hex(text.trim())
            .ok_or_else(|| no_master(path, &"the file does not hold 64 hexadecimal digits"))
    }

    /// The key's 64 hexadecimal digits.
    #[must_use]
    pub fn to_hex(&self) -> Zeroizing<String> {
        let mut hex = Zeroizing::new(String::with_capacity(64));
        for byte in self.bytes.iter() {
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
        }
        hex
    }

    /// `key` sealed for `tenant`: a fresh nonce, then the ciphertext.
    pub(super) fn wrap(&self, tenant: &str, key: &TenantKey, file: &Path) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| no_master(file, &e))?;
        let payload = Payload {
            msg: key.as_bytes(),
            aad: tenant.as_bytes(),
        };
        let sealed = (self.cipher().encrypt(&XNonce::from(nonce), payload))
            .map_err(|_| no_master(file, &"the key could not be sealed"))?;
        Ok([&nonce[..], &sealed].concat())
    }

    /// The key `wrapped` holds for `tenant`, if this master key sealed it
    /// for that tenant (`None`: another master key, another tenant's file,
    /// or a damaged one).
    pub(super) fn unwrap(&self, tenant: &str, wrapped: &[u8]) -> Option<TenantKey> {
        let (nonce, sealed) = wrapped.split_at_checked(NONCE_LEN)?;
        let nonce = XNonce::from(<[u8; NONCE_LEN]>::try_from(nonce).ok()?);
        let payload = Payload {
            msg: sealed,
            aad: tenant.as_bytes(),
        };
        let opened = Zeroizing::new(self.cipher().decrypt(&nonce, payload).ok()?);
        let bytes = <[u8; TenantKey::LEN]>::try_from(opened.as_slice()).ok()?;
        Some(TenantKey::from_bytes(bytes))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.bytes).into())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn parse_hex(hex: &str) -> Option<MasterKey> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(MasterKey { bytes })
}

fn no_master(path: &Path, reason: &dyn fmt::Display) -> Error {
    Error::Encryption {
        tenant: None,
        path: PathBuf::from(path),
        reason: format!(
            "no usable master key: {reason}; give the 64 hexadecimal digits of the root's master key in TENANTED_MASTER_KEY or a file named by TENANTED_MASTER_KEY_FILE"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_only_with_its_master_key_and_tenant() {
        let master = MasterKey::generate().unwrap();
        let key = TenantKey::generate().unwrap();
        let wrapped = master.wrap("acme", &key, Path::new("k")).unwrap();
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        assert_eq!(master.unwrap("acme", &wrapped), Some(key));
        assert_eq!(master.unwrap("globex", &wrapped), None);
        let other = MasterKey::generate().unwrap();
        assert_eq!(other.unwrap("acme", &wrapped), None);
        let again = MasterKey::from_hex(&master.to_hex()).unwrap();
        assert!(again.unwrap("acme", &wrapped).is_some());
        assert!(MasterKey::from_hex("abc").is_err());
    }
}
