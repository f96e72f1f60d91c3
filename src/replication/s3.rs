//! Listing an S3 replica (ListObjectsV2), for a rebuild to find its
//! tenants. Requests are signed with the standard `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) variables, as
//! Litestream signs its own.

use std::time::{Duration, SystemTime};

use rusty_s3::actions::{DeleteObject, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::timestamp::parse_timestamp;
use super::until::Until;
use crate::error::{Error, Result};
use crate::paths::ReplicaTarget;

/// How long a signed listing request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Every key under the replica's prefix, relative to it, with its last
/// modification.
pub(crate) fn list_keys(
    target: &ReplicaTarget,
    until: Until,
) -> Result<Vec<(String, Option<SystemTime>)>> {
    list_keys_for(target, "listing the tenants", until)
}

/// [`list_keys`], for `operation` (what the caller's error says was
/// being done).
fn list_keys_for(
    target: &ReplicaTarget,
    operation: &str,
    until: Until,
) -> Result<Vec<(String, Option<SystemTime>)>> {
    let failed = failure(target, operation);
    let (bucket, prefix) = bucket_and_prefix(target).map_err(&failed)?;
    let credentials = Credentials::from_env();
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let url = listing(
            &bucket,
            credentials.as_ref(),
            &prefix,
            token.as_deref(),
            None,
        );
        let body = agent_until(until)
            .and_then(|agent| get(&agent, url.as_str()))
            .map_err(|e| failed(e.explain(&bucket)))?;
        let page = ListObjectsV2::parse_response(&body)
            .map_err(|e| failed(format!("its answer is not a listing ({e})")))?;
        keys.extend(page.contents.into_iter().filter_map(|object| {
            let key = object.key.strip_prefix(prefix.as_str())?.to_owned();
            let modified = object.last_modified.as_deref().and_then(parse_timestamp);
            Some((key, modified))
        }));
        match page.next_continuation_token {
            Some(next) => token = Some(next),
            None => return Ok(keys),
        }
    }
}

/// How a failure of `operation` on `target` is reported, given why.
fn failure<'a>(target: &'a ReplicaTarget, operation: &'a str) -> impl Fn(String) -> Error + 'a {
    move |reason| Error::ReplicaRead {
        tenant: None,
        url: target.url().to_owned(),
        operation: operation.to_owned(),
        reason,
    }
}

/// The signed URL of one page of the keys under `prefix` (from `token`,
/// at most `max_keys` if given).
fn listing(
    bucket: &Bucket,
    credentials: Option<&Credentials>,
    prefix: &str,
    token: Option<&str>,
    max_keys: Option<usize>,
) -> url::Url {
    let mut action = ListObjectsV2::new(bucket, credentials);
    if !prefix.is_empty() {
        action.with_prefix(prefix);
    }
    if let Some(token) = token {
        action.with_continuation_token(token);
    }
    if let Some(max_keys) = max_keys {
        action.with_max_keys(max_keys);
    }
    action.sign(SIGNED_FOR)
}

/// Asks the store for one key under the target's prefix: whether it
/// knows the bucket and takes the keys. A replica may be empty; a store
/// that does not answer (or fails, 5xx) is only logged: it may be back
/// soon, and Litestream retries.
///
/// # Errors
///
/// [`Error::ReplicaRead`] when the store refuses (4xx), with what it said
/// and what to check.
pub(crate) fn check(target: &ReplicaTarget) -> Result<()> {
    let failed = failure(target, "checking the replica store");
    let (bucket, prefix) = bucket_and_prefix(target).map_err(&failed)?;
    let credentials = Credentials::from_env();
    let url = listing(&bucket, credentials.as_ref(), &prefix, None, Some(1));
    match get(&agent_within(CHECK_WAIT), url.as_str()) {
        Ok(_) => Ok(()),
        Err(refusal @ Refusal::Status(400..=499, _)) => Err(failed(refusal.explain(&bucket))),
        Err(other) => {
            let said = other.explain(&bucket);
            tracing::warn!(url = target.url(), error = %said, "the replica store does not answer now");
            Ok(())
        }
    }
}

/// How long the check before replication starts waits for the store: one
/// that does not answer by then is logged, and replication starts.
const CHECK_WAIT: Duration = Duration::from_secs(10);

/// Longest any one request may take, connect to last byte: a store that
/// accepts and then stalls fails the listing or erase instead of hanging
/// it (and a rebuild, a status or a destroy with it) forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP agent whose every request ends within `timeout`.
fn agent_within(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build();
    let resolver = OnThisThread(DefaultResolver::default());
    ureq::Agent::with_parts(config, DefaultConnector::default(), resolver)
}

/// Looks the store's host name up on the calling thread. ureq's own
/// resolver, given a timeout, looks it up on a thread of its own that it
/// never joins, and a process that exits while such a thread is ending can
/// corrupt its heap (see `pool/connector.rs`; a rebuild's last request is
/// just before the CLI exits). The lookup is then bounded by the system's
/// resolver (`timeout` and `attempts` in `resolv.conf`), not by the
/// request's timeout; connecting and the exchange still are.
#[derive(Debug)]
struct OnThisThread(DefaultResolver);

impl Resolver for OnThisThread {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        _: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        // No timeout: ureq's resolver then spawns no thread.
        self.0.resolve(uri, config, NextTimeout::default())
    }
}

/// An agent for the next request of a run that must end by `until`:
/// what is left of it, at most [`REQUEST_TIMEOUT`]; none once it has
/// passed, so that a stalled store holds the run no longer.
fn agent_until(until: Until) -> std::result::Result<ureq::Agent, Refusal> {
    let left = until.left().unwrap_or(REQUEST_TIMEOUT);
    if left.is_zero() {
        let why = "no answer within the operation's time (the store is slow or stalled)";
        return Err(Refusal::Unreached(why.to_owned()));
    }
    Ok(agent_within(left.min(REQUEST_TIMEOUT)))
}

/// Why a request to the store failed.
#[derive(Debug)]
enum Refusal {
    /// No answer: the store could not be reached, or stalled.
    Unreached(String),
    /// An HTTP status other than success, with the body of the answer.
    Status(u16, String),
}

impl Refusal {
    /// What went wrong, in the store's words, and what to do about it:
    /// the S3 error code and message rather than the raw XML.
    fn explain(&self, bucket: &Bucket) -> String {
        let (name, endpoint) = (bucket.name(), bucket.base_url().as_str());
        match self {
            Refusal::Unreached(e) => format!(
                "the store at {endpoint} did not answer ({e}): check that it runs and that the replica's endpoint is right"
            ),
            Refusal::Status(status, body) => {
                let code = xml_field(body, "Code").unwrap_or_default();
                let said = match xml_field(body, "Message") {
                    Some(message) => format!("HTTP {status} {code}: {message}"),
                    None => format!("HTTP {status} {code}").trim_end().to_owned(),
                };
                let hint = match (*status, code) {
                    (404, "NoSuchBucket") => format!(
                        "the bucket {name} does not exist at {endpoint}: check the URL's bucket and the endpoint, or create the bucket"
                    ),
                    (403, _) | (401, _) => "the store refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in this process's environment, and that they may use the bucket".to_owned(),
                    (status, _) if status >= 500 => "the store failed: retry once it is healthy".to_owned(),
                    _ => format!("check the URL (bucket {name}) and the endpoint {endpoint}"),
                };
                format!("{said}; {hint}")
            }
        }
    }
}

/// The text of the first `<field>` element of an S3 error document.
fn xml_field<'a>(body: &'a str, field: &str) -> Option<&'a str> {
    let open = format!("<{field}>");
    let start = body.find(&open)? + open.len();
    let end = start + body[start..].find("</")?;
    Some(body[start..end].trim()).filter(|text| !text.is_empty())
}

/// The body of a GET, or what went wrong in the store's words.
fn get(agent: &ureq::Agent, url: &str) -> std::result::Result<String, Refusal> {
    let mut answer = agent
        .get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .map_err(|e| Refusal::Unreached(e.to_string()))?;
    let status = answer.status();
    let body = answer
        .body_mut()
        .read_to_string()
        .map_err(|e| Refusal::Unreached(e.to_string()))?;
    match status.is_success() {
        true => Ok(body),
        false => Err(Refusal::Status(status.as_u16(), body)),
    }
}

/// The bucket (with its endpoint, addressing style and region) and the
/// key prefix (ending in `/`, or empty) of an `s3://BUCKET/PATH` target.
fn bucket_and_prefix(target: &ReplicaTarget) -> std::result::Result<(Bucket, String), String> {
    let rest = target.url().split_once("://").map_or("", |(_, rest)| rest);
    let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err("the URL names no bucket (s3://BUCKET/PATH)".to_owned());
    }
    let region = target.region_name().unwrap_or("us-east-1").to_owned();
    let endpoint = match target.endpoint_url() {
        Some(endpoint) if endpoint.contains("://") => endpoint.to_owned(),
        Some(endpoint) => format!("https://{endpoint}"),
        None => format!("https://s3.{region}.amazonaws.com"),
    };
    let endpoint = endpoint
        .parse::<url::Url>()
        .map_err(|e| format!("the endpoint {endpoint} is not a URL ({e})"))?;
    let style = match target.path_style() || target.endpoint_url().is_some() {
        true => UrlStyle::Path,
        false => UrlStyle::VirtualHost,
    };
    let bucket = Bucket::new(endpoint, style, name.to_owned(), region)
        .map_err(|e| format!("cannot address bucket {name} ({e})"))?;
    let path = path.trim_matches('/');
    let prefix = match path.is_empty() {
        true => String::new(),
        false => format!("{path}/"),
    };
    Ok((bucket, prefix))
}

/// Deletes every object under the target's prefix (a destroyed tenant's
/// replica), each request within `until`; how many.
///
/// # Errors
///
/// [`Error::ReplicaRead`] when the store refuses the listing or a delete,
/// or does not answer within `until`.
pub(crate) fn delete_all(target: &ReplicaTarget, until: Until) -> Result<usize> {
    const ERASING: &str = "erasing a destroyed tenant's replica";
    let failed = failure(target, ERASING);
    let (bucket, prefix) = bucket_and_prefix(target).map_err(&failed)?;
    let credentials = Credentials::from_env();
    let keys = list_keys_for(target, ERASING, until)?;
    for (key, _) in &keys {
        let key = format!("{prefix}{key}");
        let url = DeleteObject::new(&bucket, credentials.as_ref(), &key).sign(SIGNED_FOR);
        let agent = agent_until(until).map_err(|e| failed(e.explain(&bucket)))?;
        let answer = agent
            .delete(url.as_str())
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .map_err(|e| failed(Refusal::Unreached(e.to_string()).explain(&bucket)))?;
        let status = answer.status().as_u16();
        if !(200..300).contains(&status) && status != 404 {
            let refusal = Refusal::Status(
                status,
                answer.into_body().read_to_string().unwrap_or_default(),
            );
            return Err(failed(format!(
                "deleting {key}: {}",
                refusal.explain(&bucket)
            )));
        }
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> Bucket {
        let target = ReplicaTarget::new("s3://tbucket/r4").endpoint("http://127.0.0.1:18333");
        bucket_and_prefix(&target).unwrap().0
    }

    #[test]
    fn a_refusal_says_what_the_store_said_and_what_to_do() {
        let missing = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>tbucket</BucketName></Error>";
        let said = Refusal::Status(404, missing.into()).explain(&bucket());
        assert!(said.starts_with("HTTP 404 NoSuchBucket: The specified bucket does not exist; the bucket tbucket does not exist at http://127.0.0.1:18333"), "{said}");
        assert!(!said.contains("<?xml"), "{said}");
        let denied = "<Error><Code>InvalidAccessKeyId</Code><Message>no such key</Message></Error>";
        let said = Refusal::Status(403, denied.into()).explain(&bucket());
        assert!(
            said.contains("AWS_ACCESS_KEY_ID") && said.contains("InvalidAccessKeyId"),
            "{said}"
        );
        let said = Refusal::Status(502, String::new()).explain(&bucket());
        assert!(said.starts_with("HTTP 502; the store failed"), "{said}");
        let said = Refusal::Unreached("Connection refused".into()).explain(&bucket());
        assert!(
            said.contains("127.0.0.1:18333") && said.contains("Connection refused"),
            "{said}"
        );
    }
}
