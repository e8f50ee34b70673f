//! A real `blockback serve` process in a temp directory, and a small
//! HTTP client for its APIs.

use super::Dir;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin-token-for-tests";
pub const READER: &str = "read-token-for-tests";

pub struct Service {
    pub dir: Dir,
    pub url: String,
    pub config: PathBuf,
    child: Option<Child>,
}

/// A free loopback port (the kernel's choice, released for the service).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The tokens file of [`ADMIN`] and [`READER`] in `dir`.
fn write_tokens(dir: &Dir) -> PathBuf {
    let tokens = dir.path("tokens");
    let lines = format!(
        "admin admin {}\nviewer read {}\n",
        hash(ADMIN),
        hash(READER)
    );
    std::fs::write(&tokens, lines).expect("tokens file");
    tokens
}

impl Service {
    /// Writes a configuration (store in the temp dir unless `extra` sets
    /// one; `extra` is appended TOML) and starts the service.
    pub fn start(extra: &str, store: Option<&str>) -> Self {
        let dir = Dir::new();
        let port = free_port();
        let tokens = write_tokens(&dir);
        std::fs::create_dir_all(dir.path("restores")).expect("restores dir");
        let store = store.map_or_else(|| dir.store().display().to_string(), str::to_string);
        let text = format!(
            "listen = \"127.0.0.1:{port}\"\nstore = \"{store}\"\ncatalog = \"{}\"\nrestore_dirs = [\"{}\"]\n\
             shutdown_timeout_secs = 20\n{extra}\n[auth]\ntokens_file = \"{}\"\n",
            dir.path("catalog.sqlite").display(),
            dir.path("restores").display(),
            tokens.display(),
        );
        Self::launch(dir, port, &text)
    }

    /// A worker sharing the catalog at `catalog_url` (PostgreSQL) with
    /// others: named `worker`, restoring under `restores` too (a directory
    /// every worker of a test shares).
    pub fn start_shared(
        extra: &str,
        store: &str,
        catalog_url: &str,
        worker: &str,
        restores: &Path,
    ) -> Self {
        let dir = Dir::new();
        let port = free_port();
        let tokens = write_tokens(&dir);
        let text = format!(
            "listen = \"127.0.0.1:{port}\"\nstore = \"{store}\"\ncatalog = \"{catalog_url}\"\n\
             state_dir = \"{}\"\nworker_id = \"{worker}\"\nrestore_dirs = [\"{}\"]\n\
             shutdown_timeout_secs = 20\n{extra}\n[auth]\ntokens_file = \"{}\"\n",
            dir.path("state").display(),
            restores.display(),
            tokens.display(),
        );
        Self::launch(dir, port, &text)
    }

    fn launch(dir: Dir, port: u16, text: &str) -> Self {
        let config = dir.path("blockback.toml");
        std::fs::write(&config, text).expect("config");
        let mut service = Service {
            dir,
            url: format!("http://127.0.0.1:{port}"),
            config,
            child: None,
        };
        service.spawn();
        service
    }

    /// Starts (again) the service process and waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path("serve.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_blockback"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("BLOCKBACK_LOG", "info,blockback_server=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn blockback serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = ureq::get(&format!("{}/api/v1/health/live", self.url)).call() {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("blockback serve exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("blockback serve did not answer within 30 s: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("serve.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// kill -9: no cleanup, no graceful anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit (up to `within`).
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!(
                    "blockback serve did not stop within {within:?}: {}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A request with `token` (none when empty); the status and JSON body
    /// (`Null` when the body is not JSON).
    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
        self.try_call(method, path, token, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Service::call`], with a transport failure (the connection reset
    /// while the body was still being sent) as an error.
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut req = ureq::request(method, &format!("{}{path}", self.url));
        if !token.is_empty() {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, ADMIN, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, ADMIN, Some(&body.to_string()))
    }

    /// Registers a volume; returns its id.
    pub fn register(&self, name: &str, source: &str) -> String {
        let (status, v) = self.post(
            "/api/v1/volumes",
            &serde_json::json!({"name": name, "source": source}),
        );
        assert_eq!(status, 201, "register {source}: {v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Waits until job `id` is final; returns it.
    pub fn wait_job(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.get(&format!("/api/v1/jobs/{id}"));
            let state = job["state"].as_str().unwrap_or("");
            if matches!(state, "succeeded" | "failed" | "cancelled") {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} not done in {within:?}: {job}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Queues a backup of `volume` and waits for it; returns the job.
    pub fn backup(&self, volume: &str, mode: &str) -> Value {
        let (status, job) = self.post(
            "/api/v1/backups",
            &serde_json::json!({"volume": volume, "mode": mode}),
        );
        assert_eq!(status, 202, "backup of {volume}: {job}");
        let done = self.wait_job(
            job["id"].as_str().expect("job id"),
            Duration::from_secs(120),
        );
        assert_eq!(done["state"], "succeeded", "{done}\n{}", self.log());
        done
    }

    pub fn catalog(&self) -> PathBuf {
        self.dir.path("catalog.sqlite")
    }

    pub fn restores(&self) -> PathBuf {
        self.dir.path("restores")
    }

    /// The CLI on the service's catalog and store (as an operator on the
    /// same host would run it).
    pub fn cli(&self, store: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_blockback"));
        cmd.arg("--store")
            .arg(store)
            .arg("--catalog")
            .arg(self.catalog());
        cmd.args(args);
        cmd
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The path of a file under `dir` as text.
pub fn text(p: &Path) -> String {
    p.display().to_string()
}
