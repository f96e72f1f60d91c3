//! `tenanted litestream-config`: the Litestream configuration that
//! replicates the root, and the flags every replication command uses to
//! say where the replica is.

use std::path::PathBuf;

use tenanted::ReplicaTarget;
use tenanted::replication::ReplicationSettings;

use crate::Cli;
use crate::output::{errln, out};
use crate::support::{Failure, require_root};

/// Where the replica is: its URL and what an S3-compatible store needs.
#[derive(clap::Args)]
pub struct ReplicaArgs {
    /// Where Litestream replicates to: s3://BUCKET/PATH, file:///DIR, ...
    #[arg(long, value_name = "URL")]
    replica_url: String,
    /// The S3 endpoint of a store that is not AWS (SeaweedFS, MinIO, ...),
    /// for example http://127.0.0.1:8333.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Address S3 objects as ENDPOINT/BUCKET/KEY (most S3-compatible
    /// stores need it).
    #[arg(long)]
    force_path_style: bool,
    /// The S3 region.
    #[arg(long)]
    region: Option<String>,
}

impl ReplicaArgs {
    /// The replica these flags describe: the URL in either form
    /// `replicate` accepts and `replication-status` prints (its query,
    /// `?endpoint=...&forcePathStyle=true`, read as the flags; an outside
    /// probe saw `rebuild` take the query for part of the path and ask
    /// AWS), the flags given on top.
    pub fn target(&self) -> ReplicaTarget {
        let mut target = ReplicaTarget::parse(self.replica_url.as_str());
        if self.force_path_style {
            target = target.force_path_style(true);
        }
        if let Some(endpoint) = &self.endpoint {
            target = target.endpoint(endpoint.as_str());
        }
        if let Some(region) = &self.region {
            target = target.region(region.as_str());
        }
        target
    }
}

/// `tenanted litestream-config`.
#[derive(clap::Args)]
pub struct LitestreamArgs {
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Write the configuration to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `tenanted litestream-config`: prints the configuration, or writes it
/// to `--output`.
pub fn litestream_config(cli: &Cli, args: &LitestreamArgs) -> Result<u8, Failure> {
    require_root(&cli.root)?;
    let root = cli.root_config();
    let target = args.replica.target();
    let yaml = root.litestream_config_for(&target)?;
    // Nothing else in the root says Litestream replicates it: encryption
    // is refused from now on (see `record_directory_mode`).
    ReplicationSettings::record_directory_mode(&root, target.url())?;
    match &args.output {
        None => out!("{yaml}"),
        Some(path) => {
            std::fs::write(path, yaml)
                .map_err(|e| Failure(1, format!("cannot write {}: {e}", path.display())))?;
            errln!(
                "wrote {}; run, from an empty working directory outside the root (see the note below): litestream replicate -config {}",
                path.display(),
                path.display()
            );
        }
    }
    errln!("{WORKING_DIRECTORY}");
    Ok(0)
}

/// Said on every run (the configuration's head says it too).
const WORKING_DIRECTORY: &str = "note: Litestream 0.5.17 in directory mode, run from the root or any directory above it (/, systemd's default, included), stops replicating the tenants it has when a tenant is created: give it an empty working directory outside the root (systemd: WorkingDirectory=). `tenanted replicate` needs none of this, and erases destroyed tenants' replicas.";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, endpoint: Option<&str>, force_path_style: bool) -> ReplicaArgs {
        ReplicaArgs {
            replica_url: url.to_owned(),
            endpoint: endpoint.map(str::to_owned),
            force_path_style,
            region: None,
        }
    }

    #[test]
    fn a_url_in_the_query_form_names_its_store() {
        let query = "s3://tenants/p?endpoint=http://127.0.0.1:18433&forcePathStyle=true";
        let target = args(query, None, false).target();
        assert_eq!(target.url(), "s3://tenants/p");
        assert_eq!(target.endpoint_url(), Some("http://127.0.0.1:18433"));
        assert!(target.path_style());
        // The flags as well: the same store.
        let both = args(query, Some("http://127.0.0.1:18433"), true).target();
        assert_eq!(both, target);
        let flags = args("s3://tenants/p", Some("http://127.0.0.1:18433"), true).target();
        assert_eq!(flags, target);
    }
}
