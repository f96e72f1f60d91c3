//! The text of `.tenanted/limits`: one line per tenant with an override or
//! a suspension.
//!
//! ```text
//! tenanted-limits 1
//! acme<TAB>1048576<TAB>-<TAB>
//! globex<TAB>-<TAB>blocked<TAB>invoice 2026-11 unpaid
//! initech<TAB>unlimited<TAB>read-only<TAB>moving to a new plan
//! ```
//!
//! Fields: the tenant's name; its size limit (`-`: the manager's default,
//! `unlimited`, or bytes); its suspension (`-`, `read-only`, `blocked`);
//! the reason, with `\`, tab, newline and carriage return escaped as `\\`,
//! `\t`, `\n`, `\r`. Lines are sorted by name, so a rewrite is stable.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::policy::{SuspendMode, Suspension};
use crate::name::TenantName;

/// The first line of a record this release writes and reads.
const HEADER: &str = "tenanted-limits 1";

/// A tenant's size limit as recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Override {
    /// No override: the manager's default applies.
    #[default]
    Default,
    /// No limit, whatever the default.
    Unlimited,
    /// This many bytes.
    Bytes(u64),
}

/// One tenant's line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) max_size: Override,
    pub(crate) suspension: Option<Suspension>,
}

impl Entry {
    /// Whether the line says nothing (and is left out).
    pub(crate) fn is_empty(&self) -> bool {
        self.max_size == Override::Default && self.suspension.is_none()
    }
}

/// Every tenant's line, by name.
pub(crate) type Entries = HashMap<TenantName, Entry>;

/// Reads a record; the error names the line and what is wrong with it.
pub(crate) fn parse(text: &str) -> Result<Entries, (usize, String)> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, HEADER)) => {}
        Some((_, first)) => {
            return Err((
                1,
                format!(
                    "expected {HEADER:?} as the first line, found {first:?} (written by a newer release?)"
                ),
            ));
        }
        // Never one tenanted wrote (it writes the first line, synced,
        // before it renames a record into place): emptied by hand or by
        // another tool, it would lift every suspension unseen (an
        // outside probe), so it is refused like any damaged record.
        None => {
            let why = format!(
                "it is empty, where tenanted always writes {HEADER:?} first: restore it, or write that line alone back (which lifts every size limit and suspension)"
            );
            return Err((1, why));
        }
    }
    let mut entries = Entries::new();
    let mut first_lines = HashMap::new();
    for (index, line) in lines {
        if line.is_empty() {
            continue;
        }
        let (name, entry) = parse_line(line).map_err(|reason| (index + 1, reason))?;
        // Written from a map, a record names each tenant once: a second
        // line is damage or a hand edit, and neither line can be trusted
        // to be the one meant (an outside probe: the last one won).
        if let Some(first) = first_lines.insert(name.clone(), index + 1) {
            return Err((
                index + 1,
                format!("tenant {name} is named a second time (first on line {first})"),
            ));
        }
        entries.insert(name, entry);
    }
    Ok(entries)
}

fn parse_line(line: &str) -> Result<(TenantName, Entry), String> {
    let mut fields = line.splitn(4, '\t');
    let mut next = |what: &str| fields.next().ok_or_else(|| format!("no {what} field"));
    let name = TenantName::new(next("name")?).map_err(|e| e.to_string())?;
    let max_size = match next("size limit")? {
        "-" => Override::Default,
        "unlimited" => Override::Unlimited,
        bytes => Override::Bytes(
            bytes
                .parse()
                .map_err(|_| format!("size limit {bytes:?} is not a number of bytes"))?,
        ),
    };
    let mode = next("suspension")?;
    let reason = unescape(next("reason")?)?;
    let suspension = match mode {
        "-" => None,
        mode => Some(Suspension::new(mode.parse::<SuspendMode>()?, reason)),
    };
    Ok((
        name,
        Entry {
            max_size,
            suspension,
        },
    ))
}

/// Writes a record (empty lines left out), sorted by name.
pub(crate) fn format(entries: &Entries) -> String {
    let mut names: Vec<&TenantName> = entries
        .iter()
        .filter(|(_, entry)| !entry.is_empty())
        .map(|(name, _)| name)
        .collect();
    names.sort();
    let mut text = format!("{HEADER}\n");
    for name in names {
        let entry = &entries[name];
        let size = match entry.max_size {
            Override::Default => "-".to_owned(),
            Override::Unlimited => "unlimited".to_owned(),
            Override::Bytes(bytes) => bytes.to_string(),
        };
        let (mode, reason) = match &entry.suspension {
            Some(s) => (s.mode.as_str(), escape(&s.reason)),
            None => ("-", String::new()),
        };
        let _ = writeln!(text, "{name}\t{size}\t{mode}\t{reason}");
    }
    text
}

fn escape(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    for c in reason.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(field: &str) -> Result<String, String> {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => {
                return Err(format!(
                    "bad escape \\{} in the reason",
                    other.unwrap_or(' ')
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written_whatever_the_reason_holds() {
        let mut entries = Entries::new();
        let reason = "unpaid\tinvoice\n\\ 2026 \r ü";
        entries.insert(
            TenantName::new("globex").unwrap(),
            Entry {
                max_size: Override::Unlimited,
                suspension: Some(Suspension::new(SuspendMode::Blocked, reason)),
            },
        );
        entries.insert(
            TenantName::new("acme").unwrap(),
            Entry {
                max_size: Override::Bytes(1 << 20),
                suspension: None,
            },
        );
        entries.insert(TenantName::new("empty").unwrap(), Entry::default());
        let text = format(&entries);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.starts_with("tenanted-limits 1\nacme\t1048576\t-\t\n"),
            "{text}"
        );
        entries.remove("empty");
        assert_eq!(parse(&text).unwrap(), entries);
    }

    #[test]
    fn an_emptied_record_is_damage_not_no_limits() {
        let (line, reason) = parse("").unwrap_err();
        assert_eq!(line, 1);
        assert!(reason.contains("empty"), "{reason}");
    }

    #[test]
    fn a_tenant_named_twice_is_damage_not_the_last_line() {
        let text =
            "tenanted-limits 1\nacme\t1048576\t-\t\nglobex\t-\t-\t\n\nacme\tunlimited\t-\t\n";
        let (line, reason) = parse(text).unwrap_err();
        assert_eq!(line, 5);
        assert!(
            reason.contains("acme") && reason.contains("line 2"),
            "{reason}"
        );
    }

    #[test]
    fn a_damaged_record_names_its_line() {
        let text = "tenanted-limits 1\nacme\t12x\t-\t\n";
        assert_eq!(parse(text).unwrap_err().0, 2);
        assert_eq!(parse("something else\n").unwrap_err().0, 1);
        assert!(parse("tenanted-limits 1\nacme\t-\tfrozen\tx\n").is_err());
        assert!(parse("tenanted-limits 1\nbad/name\t-\t-\t\n").is_err());
        // (An empty record: `an_emptied_record_is_damage_not_no_limits`.)
        assert!(parse("tenanted-limits 1\n").unwrap().is_empty());
    }
}
