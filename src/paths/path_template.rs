//! Path templates such as `%{bucket}/%{tenant}/main.sqlite3`: parsing,
//! rendering a tenant's path, and matching directory entries back to names.

use std::path::PathBuf;

use crate::fs::siblings::{LONGEST_DIR_SIBLING_EXTRA, LONGEST_SIBLING_EXTRA, SQLITE_SIDECARS};
use crate::name::MAX_TENANT_NAME_LEN;

/// One piece of a path component.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Tenant,
    Bucket,
}

/// A validated template, split into path components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PathTemplate {
    components: Vec<Vec<Segment>>,
}

/// What a matched directory entry says about the tenant.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Captures<'a> {
    pub(super) tenant: Option<&'a str>,
    pub(super) bucket: Option<&'a str>,
}

/// The longest name a path component may have (`NAME_MAX` on Linux, macOS
/// and the BSDs).
pub(crate) const NAME_MAX: usize = 255;

impl PathTemplate {
    /// Parses and validates `template`; the error is a reason sentence.
    pub(super) fn parse(template: &str) -> Result<Self, String> {
        if template.is_empty() {
            return Err("it is empty".into());
        }
        if template.starts_with('/') {
            return Err("it must be relative to the root directory".into());
        }
        if template.contains('\\') || template.contains('\0') {
            return Err("it must not contain '\\' or NUL".into());
        }
        let components = template
            .split('/')
            .map(parse_plain_component)
            .collect::<Result<Vec<_>, _>>()?;
        check_placeholders(&components)?;
        check_file_suffix(&components)?;
        Ok(PathTemplate { components })
    }

    /// Checks that the longest tenant name, with buckets `bucket_width`
    /// digits wide, gives no path component over [`NAME_MAX`]: neither a
    /// directory nor any file beside the database (lock, scratch, fence,
    /// sidecars), which would let a tenant be created but not destroyed.
    pub(super) fn check_lengths(&self, bucket_width: usize) -> Result<(), String> {
        let last = self.components.len().saturating_sub(1);
        // A tenant's own directory has hidden siblings too (its lock, its
        // staging and fence names).
        let own_dir = self.owns_directory().then(|| last.saturating_sub(1));
        for (index, segments) in self.components.iter().enumerate() {
            let longest: usize = segments
                .iter()
                .map(|segment| match segment {
                    Segment::Literal(text) => text.len(),
                    Segment::Tenant => MAX_TENANT_NAME_LEN,
                    Segment::Bucket => bucket_width,
                })
                .sum();
            let extra = if index == last {
                LONGEST_SIBLING_EXTRA
            } else if Some(index) == own_dir {
                LONGEST_DIR_SIBLING_EXTRA
            } else {
                0
            };
            if longest + extra <= NAME_MAX {
                continue;
            }
            let over = longest + extra - NAME_MAX;
            let raw = self.render_component(index, "%{tenant}", "%{bucket}");
            let kind = match (index == last, extra) {
                (true, _) => Component::File,
                (false, 0) => Component::Dir,
                (false, _) => Component::TenantDir,
            };
            return Err(too_long(&raw, longest, kind, over));
        }
        Ok(())
    }

    pub(super) fn depth(&self) -> usize {
        self.components.len()
    }

    /// Whether each tenant has a directory of its own holding its
    /// database: the component above the file names the tenant (as in the
    /// default `%{bucket}/%{tenant}/main.sqlite3`). Create then publishes
    /// that whole directory, destroy hides it first, and a listing trusts
    /// its entry (see `storage/coordination/tenant_path.rs`).
    pub(super) fn owns_directory(&self) -> bool {
        let levels = self.components.len();
        levels
            .checked_sub(2)
            .and_then(|above_file| self.components.get(above_file))
            .is_some_and(|segments| segments.contains(&Segment::Tenant))
    }

    /// Renders the relative path of a tenant's database.
    pub(super) fn render(&self, tenant: &str, bucket: &str) -> String {
        (0..self.components.len())
            .map(|i| self.render_component(i, tenant, bucket))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Renders component `index` alone.
    pub(super) fn render_component(&self, index: usize, tenant: &str, bucket: &str) -> String {
        let mut out = String::new();
        for segment in self.components.get(index).into_iter().flatten() {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Tenant => out.push_str(tenant),
                Segment::Bucket => out.push_str(bucket),
            }
        }
        out
    }

    /// Appends component `index` to `path` as one more path component,
    /// `bucket` asked for only if the component has one: a walk builds
    /// each candidate's path with no allocation of its own.
    pub(super) fn push_component(
        &self,
        index: usize,
        tenant: &str,
        bucket: impl FnOnce() -> String,
        path: &mut PathBuf,
    ) {
        let segments = self.components.get(index).map_or(&[][..], Vec::as_slice);
        let bucket = segments
            .contains(&Segment::Bucket)
            .then(bucket)
            .unwrap_or_default();
        let out = path.as_mut_os_string();
        out.push("/");
        for segment in segments {
            match segment {
                Segment::Literal(text) => out.push(text),
                Segment::Tenant => out.push(tenant),
                Segment::Bucket => out.push(&bucket),
            }
        }
    }

    /// Matches a directory entry's name against component `index`.
    ///
    /// Buckets are `bucket_width` lowercase hex digits; the tenant part is
    /// whatever remains between the fixed parts and must be non-empty.
    pub(super) fn match_component<'a>(
        &self,
        index: usize,
        name: &'a str,
        bucket_width: usize,
    ) -> Option<Captures<'a>> {
        let segments = self.components.get(index)?;
        let mut captures = Captures::default();
        let tenant_at = segments.iter().position(|s| *s == Segment::Tenant);
        let (head, tail) = match tenant_at {
            Some(i) => (&segments[..i], &segments[i + 1..]),
            None => (&segments[..], &segments[..0]),
        };
        let mut rest = name;
        for segment in head {
            rest = take_front(segment, rest, bucket_width, &mut captures)?;
        }
        for segment in tail.iter().rev() {
            rest = take_back(segment, rest, bucket_width, &mut captures)?;
        }
        match tenant_at {
            Some(_) if !rest.is_empty() => captures.tenant = Some(rest),
            None if rest.is_empty() => {}
            _ => return None,
        }
        Some(captures)
    }
}

/// Says which component of a template is too long, and by how much.
/// Which kind of path component is too long.
enum Component {
    File,
    TenantDir,
    Dir,
}

fn too_long(raw: &str, longest: usize, kind: Component, over: usize) -> String {
    let bytes = if over == 1 { "byte" } else { "bytes" };
    let limit = format!(
        "{over} {bytes} over the limit of {NAME_MAX} bytes per path component; shorten it by at least {over} {bytes}"
    );
    match kind {
        Component::File => format!(
            "with a {MAX_TENANT_NAME_LEN}-byte tenant name the file name {raw:?} is {longest} bytes, and the hidden files tenanted keeps beside it (such as .NAME.tmp-PID-N-journal) add up to {LONGEST_SIBLING_EXTRA} more: {limit}"
        ),
        Component::TenantDir => format!(
            "with a {MAX_TENANT_NAME_LEN}-byte tenant name the tenant's directory name {raw:?} is {longest} bytes, and the hidden entries tenanted keeps beside it (such as .NAME.destroying) add up to {LONGEST_DIR_SIBLING_EXTRA} more: {limit}"
        ),
        Component::Dir => format!(
            "with a {MAX_TENANT_NAME_LEN}-byte tenant name the directory name {raw:?} is {longest} bytes: {limit}"
        ),
    }
}

/// Parses one component, refusing the names a template may not use.
fn parse_plain_component(raw: &str) -> Result<Vec<Segment>, String> {
    if raw.is_empty() || raw == "." || raw == ".." {
        return Err(format!(
            "component {raw:?} is not allowed: use plain names separated by single '/'"
        ));
    }
    if raw.starts_with('.') {
        return Err(format!(
            "component {raw:?} starts with '.': hidden names are reserved for tenanted's own files"
        ));
    }
    parse_component(raw)
}

/// `%{tenant}` exactly once, `%{bucket}` at most once.
fn check_placeholders(components: &[Vec<Segment>]) -> Result<(), String> {
    let count = |wanted: Segment| {
        components
            .iter()
            .flatten()
            .filter(|s| **s == wanted)
            .count()
    };
    let (tenants, buckets) = (count(Segment::Tenant), count(Segment::Bucket));
    if tenants != 1 {
        return Err(format!(
            "%{{tenant}} must appear exactly once, found {tenants}"
        ));
    }
    if buckets > 1 {
        return Err(format!(
            "%{{bucket}} may appear at most once, found {buckets}"
        ));
    }
    Ok(())
}

/// The file name must end in a fixed suffix that no sidecar or lock file
/// of a tenant's database could end in.
fn check_file_suffix(components: &[Vec<Segment>]) -> Result<(), String> {
    match components.last().and_then(|c| c.last()) {
        Some(Segment::Literal(suffix))
            if !SQLITE_SIDECARS.iter().any(|s| suffix.ends_with(s))
                && !suffix.ends_with(".lock") =>
        {
            Ok(())
        }
        _ => Err(
            "the file name must end in a fixed suffix such as .sqlite3, so SQLite's -wal and -shm files are never taken for tenants"
                .into(),
        ),
    }
}

fn parse_component(raw: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        if at > 0 {
            segments.push(Segment::Literal(rest[..at].to_owned()));
        }
        let after = &rest[at..];
        if let Some(r) = after.strip_prefix("%{tenant}") {
            segments.push(Segment::Tenant);
            rest = r;
        } else if let Some(r) = after.strip_prefix("%{bucket}") {
            segments.push(Segment::Bucket);
            rest = r;
        } else {
            return Err(format!(
                "component {raw:?} has a '%' that is not %{{tenant}} or %{{bucket}}"
            ));
        }
    }
    if !rest.is_empty() {
        segments.push(Segment::Literal(rest.to_owned()));
    }
    Ok(segments)
}

fn is_bucket(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn take_front<'a>(
    segment: &Segment,
    rest: &'a str,
    width: usize,
    captures: &mut Captures<'a>,
) -> Option<&'a str> {
    match segment {
        Segment::Literal(text) => rest.strip_prefix(text.as_str()),
        Segment::Bucket => {
            let bucket = rest.get(..width)?;
            is_bucket(bucket).then(|| {
                captures.bucket = Some(bucket);
                &rest[width..]
            })
        }
        Segment::Tenant => None,
    }
}

fn take_back<'a>(
    segment: &Segment,
    rest: &'a str,
    width: usize,
    captures: &mut Captures<'a>,
) -> Option<&'a str> {
    match segment {
        Segment::Literal(text) => rest.strip_suffix(text.as_str()),
        Segment::Bucket => {
            let split = rest.len().checked_sub(width)?;
            let bucket = rest.get(split..)?;
            is_bucket(bucket).then(|| {
                captures.bucket = Some(bucket);
                &rest[..split]
            })
        }
        Segment::Tenant => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t = PathTemplate::parse("%{bucket}/%{tenant}/main.sqlite3").unwrap();
        assert_eq!(t.depth(), 3);
        assert_eq!(t.render("acme", "0f"), "0f/acme/main.sqlite3");
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in [
            "",
            "/abs/%{tenant}.db",
            "%{tenant}",
            "%{tenant}.db-wal",
            "%{tenant}/%{tenant}.db",
            "a//%{tenant}.db",
            "../%{tenant}.db",
            ".hidden/%{tenant}.db",
            "%{tenant}/%{other}.db",
            "%{bucket}/%{bucket}/%{tenant}.db",
            "main.db",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn matches_components_back() {
        let t = PathTemplate::parse("db-%{bucket}-x/t_%{tenant}.sqlite3").unwrap();
        let c = t.match_component(0, "db-0a-x", 2).unwrap();
        assert_eq!(c.bucket, Some("0a"));
        assert!(t.match_component(0, "db-0g-x", 2).is_none());
        assert!(t.match_component(0, "db-0a", 2).is_none());
        let c = t.match_component(1, "t_acme.sqlite3", 2).unwrap();
        assert_eq!(c.tenant, Some("acme"));
        assert!(t.match_component(1, "t_.sqlite3", 2).is_none());
        assert!(t.match_component(1, "t_acme.sqlite3-wal", 2).is_none());
    }

    #[test]
    fn bucket_and_tenant_in_one_component() {
        let t = PathTemplate::parse("%{tenant}%{bucket}.db").unwrap();
        let c = t.match_component(0, "acme7f.db", 2).unwrap();
        assert_eq!((c.tenant, c.bucket), (Some("acme"), Some("7f")));
    }
}
