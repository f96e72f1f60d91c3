//! Validated tenant names.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{Error, Result};

/// The longest tenant name accepted, in bytes.
pub const MAX_TENANT_NAME_LEN: usize = 100;

/// A tenant name that is safe to put in a file path.
///
/// The rules are an allowlist: 1 to 100 ASCII letters, digits, `-`, `_` and
/// `.`, starting with a letter or digit (so never `.`, `..` or a hidden
/// file). Anything else, including path separators, `%`, spaces, quotes,
/// control characters and non-ASCII text, is rejected.
///
/// Names are case-sensitive. On a case-insensitive file system (macOS by
/// default) `Acme` and `acme` share a file, so the second `create_tenant`
/// fails with [`Error::TenantExists`]; prefer lowercase names.
///
/// Cloning is cheap (a reference count).
///
/// ```
/// use tenanted::TenantName;
///
/// let name = TenantName::new("acme-corp_2")?;
/// assert_eq!(name.as_str(), "acme-corp_2");
/// assert!(TenantName::new("../etc").is_err());
/// # Ok::<(), tenanted::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TenantName(Arc<str>);

impl TenantName {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`] naming the rule that failed.
    ///
    /// ```
    /// use tenanted::{Error, TenantName};
    ///
    /// let err = TenantName::new("a/b").unwrap_err();
    /// assert!(matches!(err, Error::BadTenantName { .. }));
    /// assert!(err.to_string().contains("path separator"));
    /// ```
    pub fn new(name: &str) -> Result<Self> {
        validate(name)?;
        Ok(TenantName(Arc::from(name)))
    }

    /// The name as a string slice.
    ///
    /// ```
    /// # use tenanted::TenantName;
    /// assert_eq!(TenantName::new("acme")?.as_str(), "acme");
    /// # Ok::<(), tenanted::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks `name` against the allowlist without allocating.
pub(crate) fn validate(name: &str) -> Result<()> {
    match broken_rule(name) {
        None => Ok(()),
        Some(reason) => Err(Error::BadTenantName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        }),
    }
}

fn broken_rule(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    let first = match bytes.first() {
        None => return Some("the name is empty"),
        Some(first) => *first,
    };
    if bytes.len() > MAX_TENANT_NAME_LEN {
        return Some("the name is longer than 100 bytes");
    }
    if bytes.iter().any(|b| *b == b'/' || *b == b'\\') {
        return Some("it contains a path separator ('/' or '\\')");
    }
    if name == "." || name == ".." {
        return Some("'.' and '..' are not names");
    }
    if !first.is_ascii_alphanumeric() {
        return Some("the first character must be an ASCII letter or digit");
    }
    if let Some(bad) = bytes
        .iter()
        .find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    {
        return Some(match bad {
            0 => "it contains a NUL byte",
            b if b.is_ascii_control() => "it contains a control character",
            b' ' => "it contains a space",
            b'%' => "it contains '%'",
            b'"' | b'\'' | b'`' => "it contains a quote",
            b if !b.is_ascii() => "it contains a non-ASCII character",
            _ => "it contains a character outside [A-Za-z0-9._-]",
        });
    }
    None
}

// Hash and compare like `str`, so an `LruCache<TenantName, _>` can be
// looked up with a borrowed `&str` without allocating.
impl Hash for TenantName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Borrow<str> for TenantName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for TenantName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for TenantName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        TenantName::new(s)
    }
}

impl TryFrom<&str> for TenantName {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self> {
        TenantName::new(s)
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for TenantName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TenantName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
