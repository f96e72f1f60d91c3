//! `tenanted master-key`: make a master key, and rotate the root's (the
//! `encryption` feature). Keys are never taken from the command line,
//! where other users see them (`ps`): the current one from the
//! environment, the new one from a file.

use std::path::PathBuf;

use clap::Subcommand;
use tenanted::{MasterKey, RootKeyStore};

use super::Cli;
use super::support::{Failure, USAGE, cli_message, require_root};
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
            // A key that cannot be used is the command's misuse (exit 2),
            // as for every other command (an outside probe: exit 1).
            let current = MasterKey::from_env().map_err(|e| {
                Failure(
                    USAGE,
                    format!("{}; nothing was re-wrapped", cli_message(&e)),
                )
            })?;
            let new = MasterKey::from_file(new_key_file).map_err(|e| {
                let why = match e {
                    tenanted::Error::Encryption { .. } => "it does not hold 64 hexadecimal digits: make a new master key with `tenanted master-key new > FILE`".to_owned(),
                    e => cli_message(&e),
                };
                let file = new_key_file.display();
                Failure(USAGE, format!("the new master key file {file}: {why}; nothing was re-wrapped"))
            })?;
            let count = RootKeyStore::new(&cli.root, current).rewrap(&new)?;
            outln!("re-wrapped {count} tenant key(s) with the new master key");
            Ok(0)
        }
    }
}
