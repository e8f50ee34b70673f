//! One module per command; each turns arguments into an engine call.

pub mod backup;
mod jobs;
mod keys;
mod maintenance;
mod nbd;
mod prune;
mod retention;
pub mod serve;
pub mod show;
mod stream;

use crate::args::{BackupCommand, Cli, Command, PolicyCommand, StoreCommand};
use crate::config::Config;
use crate::session::Session;
use anyhow::Result;

pub fn run(cli: Cli) -> Result<()> {
    if let Some(url) = &cli.server {
        return crate::remote::run(&cli, url);
    }
    let config = Config::from_cli(&cli)?;
    // Commands that need no catalog.
    match &cli.command {
        Command::Store(StoreCommand::Init {
            chunk_size,
            encryption,
        }) => return maintenance::store_init(&config, *chunk_size, encryption, &cli.keys),
        Command::Key(command) => return keys::run(&config, command),
        Command::Verify {
            stored_only: true, ..
        } => return keys::verify_stored(&config),
        _ => {}
    }
    let session = Session::open(config)?;
    match cli.command {
        Command::Backup(BackupCommand::Create(args)) => backup::create(&session, &args),
        Command::Backup(BackupCommand::Restore {
            backup,
            target,
            live,
        }) if live.live => nbd::live_restore(&session, &backup, &target, &live),
        Command::Backup(BackupCommand::Restore { backup, target, .. }) => {
            backup::restore(&session, &backup, &target)
        }
        Command::Nbd(args) => nbd::serve(&session, &args),
        Command::Backup(BackupCommand::List { source }) => show::list(&session, source.as_deref()),
        Command::Backup(BackupCommand::Show { backup }) => show::show(&session, &backup),
        Command::Backup(BackupCommand::Delete {
            backup,
            retry_delay,
        }) => backup::delete(&session, &backup, retry_delay),
        Command::Backup(BackupCommand::Protect { backup }) => {
            retention::protect(&session, &backup, true)
        }
        Command::Backup(BackupCommand::Unprotect { backup }) => {
            retention::protect(&session, &backup, false)
        }
        Command::Prune { volume, dry_run } => prune::prune(&session, volume.as_deref(), dry_run),
        Command::Policy(PolicyCommand::Set(args)) => retention::policy_set(&session, &args),
        Command::Policy(PolicyCommand::Show { volume }) => {
            retention::policy_show(&session, volume.as_deref())
        }
        Command::Policy(PolicyCommand::Unset { volume }) => {
            retention::policy_unset(&session, volume.as_deref())
        }
        Command::Key(_) => unreachable!("handled before the catalog is opened"),
        Command::Verify { backup, repair, .. } => {
            maintenance::verify(&session, backup.as_deref(), repair)
        }
        Command::Gc => maintenance::gc(&session),
        Command::Adopt {
            volume_pool,
            checksums,
            volume_id,
        } => maintenance::adopt(&session, &volume_pool, checksums, volume_id),
        Command::Store(StoreCommand::Stats) => maintenance::stats(&session),
        Command::Serve(_) => unreachable!("main runs serve before anything else"),
        Command::Job(cmd) => jobs::run(&session, &cmd),
        Command::Volume(_) => anyhow::bail!(
            "volume commands manage the service's registered volumes: give --server URL (token in BLOCKBACK_TOKEN)"
        ),
        Command::Store(StoreCommand::Init { .. }) => {
            unreachable!("handled before the catalog is opened")
        }
        Command::ExportDiff {
            source,
            out,
            from_snap,
        } => stream::export_diff(&session, &source, from_snap.as_deref(), &out),
        Command::ImportDiff {
            input,
            target,
            force,
        } => stream::import_diff(&session, &input, &target, force),
        Command::Export {
            source,
            out,
            format,
        } => stream::export(&session, &source, &out, format),
        Command::Import {
            input,
            target,
            format,
        } => stream::import(&session, &input, &target, format),
        Command::MergeDiff { first, second, out } => {
            stream::merge_diff(&session, &first, &second, &out)
        }
    }
}
