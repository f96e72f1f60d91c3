//! `tenanted rekey`: encrypt tenants again under new keys, or encrypt
//! plaintext ones (the `encryption` feature), while other processes serve
//! them. The old keys are destroyed: backups taken before can no longer
//! be restored, so the command asks first.

use clap::Args;

use super::Cli;
use super::interrupt::{finish_the_tenant_in_hand_on_ctrl_c, unless_interrupted, was_interrupted};
use super::support::{Failure, confirm, require_root, tenant_names};
use crate::output::{errln, outln};

#[derive(Args)]
pub struct RekeyArgs {
    /// Tenant names (all are checked before anything is asked or done).
    #[arg(required = true, env = "TENANTED_TENANT")]
    names: Vec<String>,
    /// Do not ask (required when not on a terminal).
    #[arg(long)]
    yes: bool,
}

pub fn rekey(cli: &Cli, args: &RekeyArgs) -> Result<u8, Failure> {
    let names = tenant_names(&args.names)?;
    require_root(&cli.root)?;
    let manager = cli.manager_for("re-key", &names)?;
    let list: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
    confirm(
        args.yes,
        "rekey makes every earlier backup of these tenants unreadable",
        &format!(
            "Re-key {}? Backups taken before can no longer be restored.",
            list.join(", ")
        ),
        "nothing re-keyed",
    )?;
    let interrupted = finish_the_tenant_in_hand_on_ctrl_c();
    let mut failed = 0;
    for name in &names {
        if was_interrupted(&interrupted) {
            errln!("not started {name}: interrupted");
            continue;
        }
        match manager.rekey_tenant(name.as_str()) {
            Ok(()) => outln!("re-keyed {name}"),
            Err(e) => {
                failed += 1;
                errln!("error: {}", Failure::from(e).1);
            }
        }
    }
    Ok(unless_interrupted(&interrupted, u8::from(failed > 0)))
}
