//! `tenanted master-key`: make a master key, and rotate the root's (the
//! `encryption` feature). Keys are never taken from the command line,
//! where other users see them (`ps`): the current one from the
//! environment, the new one from a file.

use std::path::PathBuf;

use clap::Subcommand;
use tenanted::{MasterKey, RootKeyStore};

use super::Cli;
use super::support::{Failure, require_root};
use crate::output::outln;

#[derive(Subcommand)]
pub enum MasterKeyCommand {
    /// Print a new random master key (64 hexadecimal digits).
    New,
    /// Re-wrap every tenant key of the root with a new master key (the
    /// current one from TENANTED_MASTER_KEY or TENANTED_MASTER_KEY_FILE);
    /// no database is touched. Run it while no process creates or
    /// destroys tenants, then give every process the new key.
    Rotate {
        /// The file holding the new master key.
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

pub fn master_key(cli: &Cli, command: &MasterKeyCommand) -> Result<u8, Failure> {
    match command {
        MasterKeyCommand::New => {
            outln!("{}", MasterKey::generate()?.to_hex().as_str());
            Ok(0)
        }
        MasterKeyCommand::Rotate { new_key_file } => {
            require_root(&cli.root)?;
            let current = MasterKey::from_env()?;
            let new = MasterKey::from_file(new_key_file)?;
            let count = RootKeyStore::new(&cli.root, current).rewrap(&new)?;
            outln!("re-wrapped {count} tenant key(s) with the new master key");
            Ok(0)
        }
    }
}
