//! `--server URL`: the CLI as a client of `blockback serve` (the native
//! API), with the same output and `--json` as the local commands. Jobs
//! run in the service; `backup create` and `restore` wait for theirs.

use crate::args::{BackupCommand, Cli, Command, JobCommand, VolumeCommand};
use crate::output::emit;
use anyhow::{bail, Context, Result};
use blockback_core::catalog::BackupRecord;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often a waiting command asks for its job, and prints progress.
const POLL: Duration = Duration::from_millis(250);
const REPORT_EVERY: Duration = Duration::from_secs(5);

pub struct Remote {
    url: String,
    token: Option<String>,
    json: bool,
    quiet: bool,
}

impl Remote {
    pub fn new(url: &str, json: bool, quiet: bool) -> Result<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--server {url}: give the service's http:// or https:// URL");
        }
        let token = std::env::var("BLOCKBACK_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        Ok(Remote {
            url: url.trim_end_matches('/').to_string(),
            token,
            json,
            quiet,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut req = ureq::request(method, &format!("{}/api/v1{path}", self.url));
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match result {
            Ok(r) => {
                let text = r.into_string().context("reading the service's answer")?;
                Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(ureq::Error::Status(code, r)) => {
                let body: Value = r.into_json().unwrap_or(Value::Null);
                let message = body["error"]["message"]
                    .as_str()
                    .unwrap_or("no message")
                    .to_string();
                let hint = if code == 401 && self.token.is_none() {
                    " (set BLOCKBACK_TOKEN)"
                } else {
                    ""
                };
                bail!("{message}{hint} (HTTP {code} from {})", self.url)
            }
            Err(e) => bail!("cannot reach the service at {}: {e}", self.url),
        }
    }

    /// Waits for job `id` to end; progress on stderr unless quiet.
    fn wait(&self, id: &str) -> Result<Value> {
        let mut last = Instant::now();
        loop {
            let job = self.call("GET", &format!("/jobs/{id}"), None)?;
            match job["state"].as_str() {
                Some("succeeded") => return Ok(job),
                Some("failed" | "cancelled") => {
                    bail!(
                        "job {id} {}: {}",
                        job["state"].as_str().unwrap_or(""),
                        job["error"].as_str().unwrap_or("no reason")
                    )
                }
                _ => {}
            }
            if !self.quiet && !self.json && last.elapsed() >= REPORT_EVERY {
                eprintln!("{}", job_line(&job));
                last = Instant::now();
            }
            std::thread::sleep(POLL);
        }
    }

    fn backup(&self, id: &str) -> Result<(BackupRecord, Value)> {
        let value = self.call("GET", &format!("/backups/{id}"), None)?;
        let record =
            serde_json::from_value(value.clone()).context("the service's backup record")?;
        Ok((record, value))
    }
}

/// Runs a command against the service.
pub fn run(cli: &Cli, url: &str) -> Result<()> {
    let remote = Remote::new(url, cli.json, cli.quiet)?;
    match &cli.command {
        Command::Backup(BackupCommand::List { source }) => list(&remote, source.as_deref()),
        Command::Backup(BackupCommand::Create(args)) => {
            if !args.meta.is_empty() || args.name.is_some() {
                bail!("--meta and --name are local options; with --server register the volume with its name instead");
            }
            let mode = match (args.full, args.incremental) {
                (true, _) => "full",
                (_, true) => "incremental",
                _ => "auto",
            };
            create(&remote, &args.source, mode)
        }
        Command::Backup(BackupCommand::Restore {
            backup,
            target,
            live,
        }) => {
            if live.live {
                bail!("--live runs on the host that serves the export; run it without --server");
            }
            restore(&remote, backup, target)
        }
        Command::Job(cmd) => job(&remote, cmd),
        Command::Volume(cmd) => volume(&remote, cmd),
        _ => bail!(
            "this command is not available with --server (list, create and restore backups, volume add/list/show/remove, and job list/show/cancel are); run it on the service's host without --server"
        ),
    }
}

fn list(remote: &Remote, source: Option<&str>) -> Result<()> {
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let query = marker
            .as_ref()
            .map_or(String::new(), |m| format!("?marker={m}"));
        let page = remote.call("GET", &format!("/backups{query}"), None)?;
        all.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_marker"].as_str() {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    if let Some(source) = source {
        all.retain(|b| b["source"] == source || b["volume_id"] == source);
    }
    let records: Vec<BackupRecord> = all
        .iter()
        .map(|b| serde_json::from_value(b.clone()))
        .collect::<Result<_, _>>()
        .context("the service's backup records")?;
    let protected: BTreeSet<uuid::Uuid> = records
        .iter()
        .zip(&all)
        .filter(|(_, v)| v["protected"] == true)
        .map(|(r, _)| r.id)
        .collect();
    emit(remote.json, &all, || {
        crate::commands::show::table(&records, &protected)
    })
}

fn create(remote: &Remote, volume: &str, mode: &str) -> Result<()> {
    let job = remote.call(
        "POST",
        "/backups",
        Some(&json!({"volume": volume, "mode": mode})),
    )?;
    let id = job["id"]
        .as_str()
        .context("the service answered without a job id")?;
    let done = remote.wait(id)?;
    let backup_id = done["backup_id"]
        .as_str()
        .context("the job has no backup id")?;
    let (record, mut value) = remote.backup(backup_id)?;
    value["job"] = done;
    emit(remote.json, &value, || {
        crate::commands::backup::created_line(&record)
    })
}

fn restore(remote: &Remote, backup: &str, target: &str) -> Result<()> {
    let volumes = remote.call("GET", "/volumes", None)?;
    let registered = volumes
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["id"] == target || v["name"] == target);
    let body = match registered {
        Some(v) => json!({"volume_id": v["id"]}),
        None if target.starts_with('/') => json!({"path": target}),
        None => bail!("restore target {target}: give a registered volume's id or name, or an absolute path under the service's restore_dirs"),
    };
    let job = remote.call("POST", &format!("/backups/{backup}/restore"), Some(&body))?;
    let id = job["id"]
        .as_str()
        .context("the service answered without a job id")?;
    let done = remote.wait(id)?;
    emit(remote.json, &done, || {
        format!("restored backup {backup} to {target} (job {id})")
    })
}

fn job(remote: &Remote, cmd: &JobCommand) -> Result<()> {
    match cmd {
        JobCommand::List { state } => {
            let query = state
                .as_ref()
                .map_or(String::new(), |s| format!("?state={s}"));
            let jobs = remote.call("GET", &format!("/jobs{query}"), None)?;
            emit(remote.json, &jobs, || {
                jobs_table(jobs.as_array().map_or(&[][..], Vec::as_slice))
            })
        }
        JobCommand::Show { job } => {
            let j = remote.call("GET", &format!("/jobs/{job}"), None)?;
            emit(remote.json, &j, || job_detail(&j))
        }
        JobCommand::Cancel { job } => {
            let j = remote.call("POST", &format!("/jobs/{job}/cancel"), Some(&json!({})))?;
            emit(remote.json, &j, || cancel_line(&j))
        }
    }
}

fn volume(remote: &Remote, cmd: &VolumeCommand) -> Result<()> {
    match cmd {
        VolumeCommand::Add {
            name,
            source,
            cluster,
        } => {
            let body = json!({"name": name, "source": source, "cluster": cluster});
            let v = remote.call("POST", "/volumes", Some(&body))?;
            emit(remote.json, &v, || {
                format!(
                    "volume {} registered: {} ({})",
                    v["id"].as_str().unwrap_or(""),
                    v["name"].as_str().unwrap_or(""),
                    v["source"].as_str().unwrap_or("")
                )
            })
        }
        VolumeCommand::List => {
            let all = remote.call("GET", "/volumes", None)?;
            emit(remote.json, &all, || {
                volumes_table(all.as_array().map_or(&[][..], Vec::as_slice))
            })
        }
        VolumeCommand::Show { volume } => {
            let v = find_volume(remote, volume)?;
            emit(remote.json, &v, || volumes_table(std::slice::from_ref(&v)))
        }
        VolumeCommand::Remove { volume } => {
            let v = find_volume(remote, volume)?;
            let id = v["id"].as_str().unwrap_or("");
            remote.call("DELETE", &format!("/volumes/{id}"), None)?;
            emit(remote.json, &v, || {
                format!("volume {id} unregistered; its backups stay")
            })
        }
    }
}

/// A registered volume by id or unique name.
fn find_volume(remote: &Remote, given: &str) -> Result<Value> {
    let all = remote.call("GET", "/volumes", None)?;
    let found: Vec<&Value> = all
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|v| v["id"] == given || v["name"] == given)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no registered volume has the id or name {given:?}; `blockback --server URL volume list` shows them"),
        _ => bail!("several registered volumes are named {given:?}; give the volume id"),
    }
}

fn volumes_table(volumes: &[Value]) -> String {
    if volumes.is_empty() {
        return "no registered volumes".into();
    }
    let mut lines = vec![format!(
        "{:<36}  {:<20}  {:>10}  SOURCE",
        "ID", "NAME", "SIZE"
    )];
    lines.extend(volumes.iter().map(|v| {
        format!(
            "{:<36}  {:<20}  {:>10}  {}",
            v["id"].as_str().unwrap_or(""),
            v["name"].as_str().unwrap_or(""),
            v["size"].as_u64().map_or("-".into(), crate::output::bytes),
            v["source"].as_str().unwrap_or("")
        )
    }));
    lines.join("\n")
}

/// One line per job.
pub fn jobs_table(jobs: &[Value]) -> String {
    if jobs.is_empty() {
        return "no jobs".into();
    }
    let mut lines = vec![format!(
        "{:<36}  {:<7}  {:<9}  {:<12}  {:>21}  VOLUME",
        "ID", "KIND", "STATE", "PHASE", "DONE"
    )];
    lines.extend(jobs.iter().map(job_line));
    lines.join("\n")
}

pub fn job_line(j: &Value) -> String {
    let done = format!(
        "{}/{}",
        crate::output::bytes(j["bytes_done"].as_u64().unwrap_or(0)),
        crate::output::bytes(j["bytes_total"].as_u64().unwrap_or(0))
    );
    format!(
        "{:<36}  {:<7}  {:<9}  {:<12}  {:>21}  {}",
        j["id"].as_str().unwrap_or(""),
        j["kind"].as_str().unwrap_or(""),
        j["state"].as_str().unwrap_or(""),
        j["phase"].as_str().unwrap_or(""),
        done,
        j["volume_id"].as_str().unwrap_or("")
    )
}

pub fn job_detail(j: &Value) -> String {
    let text = |k: &str| {
        j[k].as_str()
            .map_or_else(|| j[k].to_string(), str::to_string)
    };
    let rate = format!(
        "{}/s",
        crate::output::bytes(j["rate"].as_f64().unwrap_or(0.0) as u64)
    );
    let eta = j["eta_seconds"]
        .as_f64()
        .map_or("-".into(), |s| format!("{s:.0} s"));
    crate::output::fields(&[
        ("id", text("id")),
        ("kind", text("kind")),
        ("state", text("state")),
        ("phase", text("phase")),
        (
            "progress",
            job_line(j)
                .split_whitespace()
                .nth(4)
                .unwrap_or("")
                .to_string(),
        ),
        ("rate", rate),
        ("eta", eta),
        ("volume", text("volume_id")),
        ("backup", text("backup_id")),
        ("error", text("error")),
    ])
}

pub fn cancel_line(j: &Value) -> String {
    match j["state"].as_str() {
        Some("cancelled") => format!("job {} cancelled", j["id"].as_str().unwrap_or("")),
        _ => format!(
            "job {} asked to stop; it cleans up and ends as cancelled",
            j["id"].as_str().unwrap_or("")
        ),
    }
}
