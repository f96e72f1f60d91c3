//! Listing an S3 replica (ListObjectsV2), for a rebuild to find its
//! tenants. Requests are signed with the standard `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) variables, as
//! Litestream signs its own.

use std::time::{Duration, SystemTime};

use rusty_s3::actions::{DeleteObject, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::timestamp::parse_timestamp;
use crate::error::{Error, Result};
use crate::paths::ReplicaTarget;

/// How long a signed listing request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Every key under the replica's prefix, relative to it, with its last
/// modification.
pub(crate) fn list_keys(target: &ReplicaTarget) -> Result<Vec<(String, Option<SystemTime>)>> {
    let failed = |reason: String| Error::ReplicaRead {
        tenant: None,
        url: target.url().to_owned(),
        operation: "listing the tenants".to_owned(),
        reason,
    };
    let (bucket, prefix) = bucket_and_prefix(target).map_err(failed)?;
    let credentials = Credentials::from_env();
    let agent = agent();
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut action = ListObjectsV2::new(&bucket, credentials.as_ref());
        if !prefix.is_empty() {
            action.with_prefix(prefix.as_str());
        }
        if let Some(token) = &token {
            action.with_continuation_token(token.as_str());
        }
        let url = action.sign(SIGNED_FOR);
        let body = get(&agent, url.as_str()).map_err(failed)?;
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

/// The body of a GET, or what went wrong in the store's words.
/// Longest any one request may take, connect to last byte: a store that
/// accepts and then stalls fails the listing or erase instead of hanging
/// it (and a rebuild, a status or a destroy with it) forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP agent whose every request ends within [`REQUEST_TIMEOUT`].
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str) -> std::result::Result<String, String> {
    let mut answer = agent
        .get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .map_err(|e| e.to_string())?;
    let status = answer.status();
    let body = answer
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("HTTP {status}: {}", body.trim()))
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
/// replica); how many.
///
/// # Errors
///
/// [`Error::ReplicaRead`] when the store refuses the listing or a delete.
pub(crate) fn delete_all(target: &ReplicaTarget) -> Result<usize> {
    let failed = |reason: String| Error::ReplicaRead {
        tenant: None,
        url: target.url().to_owned(),
        operation: "erasing a destroyed tenant's replica".to_owned(),
        reason,
    };
    let (bucket, prefix) = bucket_and_prefix(target).map_err(failed)?;
    let credentials = Credentials::from_env();
    let agent = agent();
    let keys = list_keys(target)?;
    for (key, _) in &keys {
        let key = format!("{prefix}{key}");
        let url = DeleteObject::new(&bucket, credentials.as_ref(), &key).sign(SIGNED_FOR);
        let answer = agent
            .delete(url.as_str())
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .map_err(|e| failed(e.to_string()))?;
        let status = answer.status();
        if !status.is_success() && status.as_u16() != 404 {
            return Err(failed(format!("HTTP {status} deleting {key}")));
        }
    }
    Ok(keys.len())
}
