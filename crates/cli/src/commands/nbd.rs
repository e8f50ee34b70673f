//! `blockback nbd` and `backup restore --live`: a server from
//! `blockback-nbd`, exports from `blockback-ops`, and waiting for Ctrl-C
//! or SIGTERM.

use crate::args::{LiveArgs, NbdArgs};
use crate::session::Session;
use anyhow::{bail, Context, Result};
use blockback_nbd::{Export, Limits, Listen, Server};
use blockback_ops::{BackupExport, ExportEnd, ExportOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

/// SIGTERM ends a server like Ctrl-C does (systemd, kill).
fn catch_sigterm() {
    let handler: extern "C" fn(libc::c_int) = on_sigterm;
    // SAFETY: the handler only stores into an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

fn stop_requested() -> bool {
    crate::cancel::requested() || TERMINATED.load(Ordering::SeqCst)
}

fn bind(listen: &str, max_connections: usize) -> Result<Server> {
    let listen: Listen = listen.parse()?;
    let limits = Limits {
        max_connections,
        ..Limits::default()
    };
    Ok(Server::bind(&listen, limits)?)
}

pub fn serve(session: &Session, args: &NbdArgs) -> Result<()> {
    if args.overlay.is_some() && args.backups.len() > 1 {
        bail!("--overlay names the overlay of one export; serve one backup with it");
    }
    catch_sigterm();
    let ops = session.ops();
    let mut exports: Vec<BackupExport> = Vec::new();
    let opened = open_all(session, args, &mut exports);
    let server = match opened.and_then(|()| bind(&args.listen, args.max_connections)) {
        Ok(s) => s,
        Err(e) => {
            close_all(session, exports, ExportEnd::Close);
            return Err(e);
        }
    };
    for export in &mut exports {
        let served = export.export.take().expect("each export is added once");
        let name = served.name().to_string();
        server.add_export(served)?;
        println!("serving backup {name} at {}", server.listen().uri(&name));
    }
    while !stop_requested() {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown();
    let end = if args.save_as_backup {
        ExportEnd::SaveAsBackup
    } else {
        ExportEnd::Close
    };
    let mut first_error = None;
    for export in exports {
        let id = export.record.id;
        match ops.close_export(export, end) {
            Ok(closed) => {
                if let Some(path) = closed.overlay_kept {
                    println!("overlay of backup {id} kept at {}", path.display());
                }
                if let Some(saved) = closed.saved {
                    println!("saved the writes to backup {id} as backup {}", saved.id);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn open_all(session: &Session, args: &NbdArgs, exports: &mut Vec<BackupExport>) -> Result<()> {
    for backup in &args.backups {
        let options = ExportOptions {
            backup: backup.clone(),
            writable: args.writable,
            overlay: args.overlay.clone(),
        };
        let export = session
            .ops()
            .open_export(&options)
            .with_context(|| format!("cannot serve backup {backup}"))?;
        if exports.iter().any(|e| e.record.id == export.record.id) {
            let id = export.record.id;
            exports.push(export);
            bail!("backup {id} is named twice");
        }
        exports.push(export);
    }
    Ok(())
}

fn close_all(session: &Session, exports: Vec<BackupExport>, end: ExportEnd) {
    for export in exports {
        if let Err(e) = session.ops().close_export(export, end) {
            tracing::warn!("closing an export: {e}");
        }
    }
}

pub fn live_restore(session: &Session, backup: &str, target: &str, args: &LiveArgs) -> Result<()> {
    let ops = session.ops();
    if args.abandon {
        ops.abandon_live_restore(backup, target)?;
        println!("removed {target}, the unfinished live restore of backup {backup}");
        return Ok(());
    }
    catch_sigterm();
    let live = ops.begin_live_restore(backup, target)?;
    let id = live.backup().id.to_string();
    let served = (|| -> Result<Server> {
        let server = bind(&args.listen, 64)?;
        let description = format!("live restore of backup {id} into {}", live.target());
        server.add_export(Export::new(&id, description, live.image(), true)?)?;
        Ok(server)
    })();
    let server = match served {
        Ok(s) => s,
        Err(e) => {
            ops.engine().end_live_restore(live)?;
            return Err(e);
        }
    };
    let (done, total) = live.blocks_done();
    println!(
        "serving backup {id} at {} while restoring into {} ({} of {total} blocks {})",
        server.listen().uri(&id),
        live.target(),
        done,
        if live.resumed() {
            "already copied, resuming"
        } else {
            "copied"
        },
    );
    let stop = Arc::new(AtomicBool::new(false));
    let copier = live.copier();
    let rate = args.copy_rate;
    let copy = {
        let stop = stop.clone();
        std::thread::spawn(move || copier.run(4, rate, &stop, &|_, _| {}))
    };
    while !copy.is_finished() && !stop_requested() {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let copied = copy.join().unwrap_or_else(|_| {
        Err(blockback_core::engine::EngineError::Invalid(
            "the copy thread panicked".into(),
        ))
    });
    let complete = matches!(copied, Ok(true));
    if !complete || args.exit_when_done {
        server.shutdown();
        let ended = ops.engine().end_live_restore(live)?;
        copied?;
        if !ended.complete {
            println!(
                "live restore of backup {id} into {} interrupted at {} of {} blocks; run the same command to resume, or add --abandon to remove the target",
                ended.target, ended.blocks_done, ended.blocks
            );
            return Ok(());
        }
        println!("live restore of backup {id} into {} complete", ended.target);
        return Ok(());
    }
    let ended = ops.engine().end_live_restore(live)?;
    println!(
        "live restore of backup {id} into {} complete; serving it from the target until Ctrl-C",
        ended.target
    );
    while !stop_requested() {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown();
    Ok(())
}
