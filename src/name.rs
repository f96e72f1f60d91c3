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

    /// The name as a string: the same as [`as_str`](Self::as_str), so
    /// that a test's [`TestRoot::default_tenant`] and its per-test
    /// [`TestTenant`]s read alike (`.name()`).
    ///
    /// [`TestRoot::default_tenant`]: https://docs.rs/tenanted/latest/tenanted/testing/struct.TestRoot.html#method.default_tenant
    /// [`TestTenant`]: https://docs.rs/tenanted/latest/tenanted/testing/struct.TestTenant.html
    ///
    /// ```
    /// # use tenanted::TenantName;
    /// assert_eq!(TenantName::new("acme")?.name(), "acme");
    /// # Ok::<(), tenanted::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Checks `name` against the allowlist (allocating only to report a
/// broken rule).
pub(crate) fn validate(name: &str) -> Result<()> {
    match broken_rule(name) {
        None => Ok(()),
        Some(reason) => Err(Error::BadTenantName {
            name: name.to_owned(),
            reason,
        }),
    }
}

fn broken_rule(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    // Every name a walk finds is checked, a million in a fleet run: the
    // common, valid case is one pass over the bytes, and only a bad name
    // pays for finding out which rule it breaks.
    if is_plainly_valid(bytes) {
        return None;
    }
    rule_broken_by(name)
}

/// The first rule `name` breaks, checked one rule at a time so that the
/// message names it.
fn rule_broken_by(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let Some(first) = name.chars().next() else {
        return Some("the name is empty".into());
    };
    if bytes.len() > MAX_TENANT_NAME_LEN {
        return Some(format!(
            "the name is longer than {MAX_TENANT_NAME_LEN} bytes ({} bytes)",
            bytes.len()
        ));
    }
    if let Some((at, c)) = name.char_indices().find(|(_, c)| matches!(c, '/' | '\\')) {
        return Some(format!(
            "it contains a path separator ('/' or '\\'): {} at byte offset {at}",
            quoted(c)
        ));
    }
    if name == "." || name == ".." {
        return Some("'.' and '..' are not names".into());
    }
    if !first.is_ascii_alphanumeric() {
        return Some(format!(
            "the first character must be an ASCII letter or digit, not {}",
            quoted(first)
        ));
    }
    let (at, bad) = name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))?;
    Some(character_rule(bad, at))
}

/// A name [`rule_broken_by`] accepts: an ASCII letter or digit first, at most
/// [`MAX_TENANT_NAME_LEN`] bytes, all of them in `[A-Za-z0-9._-]`.
fn is_plainly_valid(bytes: &[u8]) -> bool {
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.len() <= MAX_TENANT_NAME_LEN
        && bytes.iter().all(allowed)
}

/// The rule a character outside the allowlist breaks, naming the
/// character and where it is.
fn character_rule(bad: char, at: usize) -> String {
    let what = match bad {
        '\0' => "a NUL byte",
        c if c.is_control() => "a control character",
        ' ' => "a space",
        '%' => "'%'",
        '"' | '\'' | '`' => "a quote",
        c if !c.is_ascii() => "a non-ASCII character",
        _ => "a character outside [A-Za-z0-9._-]",
    };
    format!("it contains {what}: {} at byte offset {at}", quoted(bad))
}

/// A character in single quotes, escaped so that control characters and
/// quotes stay visible in a one-line message.
fn quoted(c: char) -> String {
    format!("'{}'", c.escape_debug())
}

// Hash and compare like `str`, so a `HashMap<TenantName, _>` can be
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

#[cfg(test)]
mod tests {
    use super::{MAX_TENANT_NAME_LEN, is_plainly_valid, rule_broken_by};

    /// The one-pass check accepts exactly what the rule-by-rule check
    /// accepts: every name of up to three characters drawn from letters,
    /// digits, the allowed punctuation and a sample of what is refused,
    /// and names around the length limit.
    #[test]
    fn the_quick_check_agrees_with_the_rules() {
        let alphabet = [
            "a", "Z", "0", "9", "-", "_", ".", "/", "\\", " ", "%", "\0", "\n", "é", "'", "~",
        ];
        let mut names = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = names
                .iter()
                .flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}")))
                .collect();
            names.extend(longer);
        }
        for len in [
            MAX_TENANT_NAME_LEN - 1,
            MAX_TENANT_NAME_LEN,
            MAX_TENANT_NAME_LEN + 1,
        ] {
            names.push("a".repeat(len));
            names.push(format!("a{}", ".".repeat(len - 1)));
        }
        let mut accepted = 0;
        for name in &names {
            let quick = is_plainly_valid(name.as_bytes());
            assert_eq!(quick, rule_broken_by(name).is_none(), "{name:?}");
            accepted += usize::from(quick);
        }
        assert!(accepted > 100 && accepted < names.len() / 2, "{accepted}");
    }
}
