//! One tenant incarnation's key: 256 random bits for SQLCipher's cipher and
//! a 128-bit salt, given to SQLCipher raw (`x'…'`), so that no key
//! derivation runs at open.

use std::fmt;

use zeroize::Zeroizing;

/// Why an encrypted tenant's file did not open with the key kept for it.
pub(crate) const KEY_REFUSED: &str = "the key kept for the tenant does not open it (SQLCipher: out of memory, its answer to a wrong key): its key file belongs to another incarnation of the tenant (a keys directory restored from an older backup?) or was replaced; put back the key file it was made with";

/// How many bytes of the database header SQLCipher leaves in plaintext.
///
/// 64 keeps bytes 0..64 readable without the key: the magic string, the
/// page size, the journal mode, the page and freelist counts, the schema
/// cookie and `user_version` (bytes 60..64). That lets the fleet read a
/// tenant's schema version without its key, as for a plaintext tenant
/// (see `storage/opening/header.rs`), and lets every check that a file is
/// a SQLite database keep working. No row, no schema text and nothing past
/// byte 64 of page 1 is exposed; the salt is then not stored in the file
/// and is part of the key instead.
pub(crate) const PLAINTEXT_HEADER: usize = 64;

/// A tenant incarnation's database key: 32 key bytes and 16 salt bytes,
/// wiped from memory when dropped.
#[derive(Clone)]
pub struct TenantKey {
    bytes: Zeroizing<[u8; TenantKey::LEN]>,
}

impl TenantKey {
    /// The length of a key's bytes: 32 for the cipher, 16 of salt.
    pub const LEN: usize = 48;

    /// A fresh random key from the operating system.
    ///
    /// # Errors
    ///
    /// The operating system's error when it has no randomness to give.
    pub fn generate() -> Result<TenantKey, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; TenantKey::LEN]);
        getrandom::fill(bytes.as_mut())?;
        Ok(TenantKey { bytes })
    }

    /// A key from its bytes, as [`as_bytes`](Self::as_bytes) gave them
    /// (a key provider reading back what it stored).
    #[must_use]
    pub fn from_bytes(bytes: [u8; TenantKey::LEN]) -> TenantKey {
        TenantKey {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// The key's bytes, for a key provider to store (wrapped).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; TenantKey::LEN] {
        &self.bytes
    }

    /// The statements that key a connection: the raw key with its salt,
    /// and the plaintext header. Run first, before anything reads the file.
    pub(crate) fn pragmas(&self) -> Zeroizing<String> {
        let hex = self.hex();
        // SQLCipher logs a failed decryption to stderr by default; tenanted
        // reports it as an error instead (the level is process-wide).
        Zeroizing::new(format!(
            "PRAGMA cipher_log_level = NONE; PRAGMA key = \"x'{}'\"; \
             PRAGMA cipher_plaintext_header_size = {PLAINTEXT_HEADER};",
            hex.as_str()
        ))
    }

    /// The statement that re-encrypts a database open with another key
    /// under this one (SQLCipher's `PRAGMA rekey`, the raw key with its
    /// salt: measured to work with the plaintext header).
    pub(crate) fn rekey_pragma(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("PRAGMA rekey = \"x'{}'\";", self.hex().as_str()))
    }

    fn hex(&self) -> Zeroizing<String> {
        let mut hex = Zeroizing::new(String::with_capacity(2 * TenantKey::LEN));
        for byte in self.bytes.iter() {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        hex
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantKey(..)")
    }
}

impl PartialEq for TenantKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes[..] == other.bytes[..]
    }
}

impl Eq for TenantKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_never_printed() {
        let (a, b) = (
            TenantKey::generate().unwrap(),
            TenantKey::generate().unwrap(),
        );
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "TenantKey(..)");
        let pragmas = a.pragmas();
        assert!(pragmas.contains("PRAGMA key = \"x'"));
        assert!(pragmas.matches(|c: char| c.is_ascii_hexdigit()).count() >= 96);
    }
}
