//! Where Litestream replicates a root to: a URL, and what an S3-compatible
//! store needs beside it (an endpoint, path-style addressing, a region).
//!
//! Every tenant's replica sits at the URL followed by the tenant's path
//! relative to the root (what Litestream's directory mode does), so one
//! target names the replica of every tenant.

/// A replica for Litestream: `file:///DIR`, `s3://BUCKET/PATH`, or any
/// URL Litestream 0.5 accepts, with the settings an S3-compatible store
/// (SeaweedFS, MinIO, Ceph, R2, ...) needs.
///
/// ```
/// let target = tenanted::ReplicaTarget::new("s3://backups/tenants")
///     .endpoint("http://127.0.0.1:8333")
///     .force_path_style(true);
/// assert_eq!(
///     target.tenant_url("00/acme/main.sqlite3"),
///     "s3://backups/tenants/00/acme/main.sqlite3?endpoint=http%3A%2F%2F127.0.0.1%3A8333&forcePathStyle=true"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaTarget {
    url: String,
    endpoint: Option<String>,
    region: Option<String>,
    force_path_style: bool,
}

impl ReplicaTarget {
    /// A replica at `url` (a trailing `/` is ignored).
    pub fn new(url: impl Into<String>) -> Self {
        let mut url = url.into();
        while url.ends_with('/') && !url.ends_with(":///") {
            url.pop();
        }
        ReplicaTarget {
            url,
            endpoint: None,
            region: None,
            force_path_style: false,
        }
    }

    /// The S3 endpoint of a store that is not AWS (for example
    /// `http://127.0.0.1:8333`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The S3 region (Litestream's default is `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Addresses objects as `ENDPOINT/BUCKET/KEY` instead of
    /// `BUCKET.ENDPOINT/KEY`, as most S3-compatible stores need.
    pub fn force_path_style(mut self, on: bool) -> Self {
        self.force_path_style = on;
        self
    }

    /// The replica URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The S3 endpoint, if set.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The S3 region, if set.
    pub fn region_name(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Whether path-style addressing is forced.
    pub fn path_style(&self) -> bool {
        self.force_path_style
    }

    /// The URL `litestream restore` takes for the database at `relative`
    /// (a path relative to the root, with `/` separators): the endpoint,
    /// path style and region ride along as query parameters.
    pub fn tenant_url(&self, relative: &str) -> String {
        let mut url = format!("{}/{}", self.url, relative.trim_start_matches('/'));
        let mut query = Vec::new();
        if let Some(endpoint) = &self.endpoint {
            query.push(format!("endpoint={}", query_escape(endpoint)));
        }
        if self.force_path_style {
            query.push("forcePathStyle=true".to_owned());
        }
        if let Some(region) = &self.region {
            query.push(format!("region={}", query_escape(region)));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }

    /// The replica block's YAML lines, indented under `replica:` of a
    /// `dbs` entry.
    pub(crate) fn yaml_lines(&self, quote: impl Fn(&str) -> String) -> String {
        let mut out = format!("      url: {}\n", quote(&self.url));
        if let Some(endpoint) = &self.endpoint {
            out.push_str(&format!("      endpoint: {}\n", quote(endpoint)));
        }
        if let Some(region) = &self.region {
            out.push_str(&format!("      region: {}\n", quote(region)));
        }
        if self.force_path_style {
            out.push_str("      force-path-style: true\n");
        }
        out
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_urls() {
        let file = ReplicaTarget::new("file:///var/r/");
        assert_eq!(
            file.tenant_url("00/a/main.sqlite3"),
            "file:///var/r/00/a/main.sqlite3"
        );
        let s3 = ReplicaTarget::new("s3://b/p").region("eu-west-1");
        assert_eq!(s3.tenant_url("x.db"), "s3://b/p/x.db?region=eu-west-1");
    }
}
