//! The real python-cinderclient and openstackclient (from PyPI, in the
//! venv `scripts/python-env.sh` makes) drive `blockback serve`'s Cinder
//! API without Keystone, on loopback, against the real test cluster:
//! create by volume id and by name, list, list --with-count, show, update,
//! restore to a new and to an existing volume, reset-state, delete; each
//! result checked in Ceph.

mod util;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use util::ceph::{cluster, rbd, scatter_writes, unique};
use util::service::Service;

const PROJECT: &str = "0123456789abcdef0123456789abcdef";

/// The test venv's bin directory; `None` (skip, loudly) unless required.
fn venv_bin() -> Option<PathBuf> {
    match std::env::var_os("BLOCKBACK_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p).parent().expect("venv bin").to_path_buf()),
        None if std::env::var("BLOCKBACK_REQUIRE_PYTHON").as_deref() == Ok("1") => {
            panic!("BLOCKBACK_REQUIRE_PYTHON=1 but BLOCKBACK_TEST_PYTHON is not set")
        }
        None => {
            eprintln!(
                "SKIPPED: no Python test venv (set BLOCKBACK_TEST_PYTHON; scripts/python-env.sh)"
            );
            None
        }
    }
}

struct Clients {
    bin: PathBuf,
    endpoint: String,
    home: PathBuf,
}

impl Clients {
    /// `cinder ...` with the noauth plugin (its own environment).
    fn cinder(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(self.bin.join("cinder"));
        cmd.args([
            "--os-auth-type",
            "noauth",
            "--os-user-id",
            "alice",
            "--os-project-id",
            PROJECT,
        ])
        .args(["--os-endpoint", &self.endpoint])
        .args(args);
        self.run(cmd, "cinder", args)
    }

    /// `openstack ...` with auth type none (no user or project variables).
    fn openstack(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(self.bin.join("openstack"));
        cmd.args(["--os-auth-type", "none", "--os-endpoint", &self.endpoint])
            .args(args);
        self.run(cmd, "openstack", args)
    }

    fn run(&self, mut cmd: Command, name: &str, args: &[&str]) -> String {
        for var in [
            "OS_AUTH_TYPE",
            "OS_USER_ID",
            "OS_PROJECT_ID",
            "OS_ENDPOINT",
            "CINDER_ENDPOINT",
            "OS_CLOUD",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", &self.home)
            .env("CINDERCLIENT_UUID_CACHE_DIR", self.home.join("cc"));
        let out = cmd.output().expect("run the client");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {stderr}\n{stdout}"
        );
        stdout.into_owned()
    }
}

/// The value of `field` in a client's `| field | value |` table.
fn field(table: &str, name: &str) -> String {
    table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() >= 3 && cells[1] == name).then(|| cells[2].to_string())
        })
        .next()
        .unwrap_or_else(|| panic!("no {name} in\n{table}"))
}

fn image_sha(conf: &Path, spec: &str) -> String {
    use sha2::{Digest, Sha256};
    let out = Command::new("rbd")
        .arg("-c")
        .arg(conf)
        .args(["export", spec, "-"])
        .output()
        .expect("rbd export");
    assert!(out.status.success(), "rbd export {spec}");
    hex::encode(Sha256::digest(&out.stdout))
}

/// Waits until every job of the service is final and none failed.
fn settle(s: &Service) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let jobs = s.get("/api/v1/jobs");
        let jobs = jobs.as_array().unwrap();
        if jobs.iter().all(|j| {
            matches!(
                j["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        }) {
            for j in jobs {
                assert_eq!(j["state"], "succeeded", "{j}\n{}", s.log());
            }
            return;
        }
        assert!(Instant::now() < deadline, "jobs did not finish: {jobs:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn backup_json(s: &Service, id: &str) -> Value {
    s.get(&format!("/api/v1/backups/{id}"))
}

#[test]
fn cinderclient_and_openstackclient_drive_backups_of_rbd_volumes() {
    let (Some(conf), Some(bin)) = (cluster(), venv_bin()) else {
        return;
    };
    let extra = format!(
        "[cinder]\nnoauth = true\n[clusters.default]\nconf = \"{}\"\n",
        conf.display()
    );
    let s = Service::start(&extra, Some("rbd:backups"));
    let clients = Clients {
        bin,
        endpoint: format!("{}/v3/{PROJECT}", s.url),
        home: s.dir.path("home"),
    };
    let (src, target) = (unique("cinder-src"), unique("cinder-target"));
    for image in [&src, &target] {
        rbd(
            &conf,
            &["create", &format!("volumes/{image}"), "--size", "48M"],
        );
    }
    scatter_writes(&conf, &format!("volumes/{src}"), "2M");
    let vid = s.register("vol-a", &format!("rbd:volumes/{src}"));
    let tid = s.register("vol-t", &format!("rbd:volumes/{target}"));

    // cinder: a full backup by volume id.
    let created = clients.cinder(&[
        "backup-create",
        "--name",
        "nightly",
        "--description",
        "first backup",
        &vid,
    ]);
    let b1 = field(&created, "id");
    assert_eq!(field(&created, "volume_id"), vid);
    settle(&s);
    let sha1 = image_sha(&conf, &format!("volumes/{src}"));
    let base = format!("volume-{vid}.backup.{b1}");
    assert!(
        rbd(&conf, &["ls", "backups"]).lines().any(|l| l == base),
        "no base {base} in Ceph"
    );
    assert!(rbd(&conf, &["snap", "ls", &format!("backups/{base}")])
        .contains(&format!("backup.{b1}.snap.")));

    // openstack: an incremental (differential) backup by volume name.
    scatter_writes(&conf, &format!("volumes/{src}"), "512K");
    let created = clients.openstack(&[
        "volume",
        "backup",
        "create",
        "--name",
        "by-name",
        "--incremental",
        "--property",
        "k1=v1",
        "vol-a",
    ]);
    let b2 = field(&created, "id");
    settle(&s);
    let sha2 = image_sha(&conf, &format!("volumes/{src}"));
    let record = backup_json(&s, &b2);
    assert_eq!(
        (record["kind"].as_str(), record["image"].as_str()),
        (Some("incremental"), Some(base.as_str()))
    );
    assert!(
        record["bytes_read"].as_u64().unwrap() < 8 << 20,
        "not differential: {record}"
    );
    assert!(rbd(&conf, &["snap", "ls", &format!("backups/{base}")])
        .contains(&format!("backup.{b2}.snap.")));

    // Lists and shows.
    let listed = clients.cinder(&["backup-list", "--with-count"]);
    assert!(
        listed.contains(&b1) && listed.contains(&b2) && listed.contains("Backup in total: 2"),
        "{listed}"
    );
    let listed = clients.openstack(&["volume", "backup", "list"]);
    assert!(listed.contains(&b1) && listed.contains(&b2), "{listed}");
    let shown = clients.cinder(&["backup-show", &b1]);
    assert_eq!(
        (field(&shown, "status"), field(&shown, "name")),
        ("available".into(), "nightly".into())
    );
    let shown = clients.openstack(&["volume", "backup", "show", "by-name"]);
    assert_eq!(
        (field(&shown, "is_incremental"), field(&shown, "metadata")),
        ("True".into(), "{'k1': 'v1'}".into())
    );
    clients.openstack(&["volume", "backup", "set", "--name", "renamed", &b2]);
    assert_eq!(
        field(&clients.cinder(&["backup-show", &b2]), "name"),
        "renamed"
    );

    // Restores: the newest to a new volume (cinder), the first onto an existing one (openstack).
    let restored = clients.cinder(&["backup-restore", "--name", "restored-a", &b2]);
    let new_volume = field(&restored, "volume_id");
    settle(&s);
    assert_eq!(
        image_sha(&conf, &format!("volumes/volume-{new_volume}")),
        sha2,
        "restore to a new volume differs"
    );
    assert_eq!(
        field(&clients.cinder(&["show", &new_volume]), "name"),
        "restored-a"
    );
    clients.openstack(&["volume", "backup", "restore", "--force", &b1, "vol-t"]);
    settle(&s);
    assert_eq!(
        image_sha(&conf, &format!("volumes/{target}")),
        sha1,
        "restore onto an existing volume differs"
    );
    let _ = tid;

    // Reset state and deletes; nothing of the chain is left in Ceph.
    clients.cinder(&["backup-reset-state", "--state", "error", &b2]);
    assert_eq!(backup_json(&s, &b2)["status"], "error");
    clients.cinder(&["backup-delete", &b2]);
    clients.openstack(&["volume", "backup", "delete", &b1]);
    settle(&s);
    assert!(
        !rbd(&conf, &["ls", "backups"]).contains(&vid),
        "the chain's base leaked"
    );
    assert!(
        !rbd(&conf, &["snap", "ls", &format!("volumes/{src}")]).contains("backup."),
        "a source snapshot leaked"
    );
    let listed = clients.cinder(&["backup-list"]);
    assert!(!listed.contains(&b1) && !listed.contains(&b2), "{listed}");
    rbd(&conf, &["rm", &format!("volumes/volume-{new_volume}")]);
    for image in [&src, &target] {
        rbd(&conf, &["rm", &format!("volumes/{image}")]);
    }
}

#[test]
fn cinder_errors_have_cinders_shape() {
    let (Some(conf), Some(bin)) = (cluster(), venv_bin()) else {
        return;
    };
    let extra = format!("[clusters.default]\nconf = \"{}\"\n", conf.display());
    let s = Service::start(&extra, Some("rbd:backups"));
    // Without noauth, the Cinder API wants a token in X-Auth-Token.
    let url = format!("{}/v3/{PROJECT}/backups/detail", s.url);
    let err = ureq::get(&url)
        .set("X-Auth-Token", "wrong")
        .call()
        .unwrap_err();
    let ureq::Error::Status(401, r) = err else {
        panic!("expected 401")
    };
    let body: Value = r.into_json().unwrap();
    assert_eq!(body["unauthorized"]["code"], 401);
    let ok = ureq::get(&url)
        .set("X-Auth-Token", util::service::READER)
        .call()
        .unwrap();
    assert_eq!(ok.header("openstack-api-version"), Some("volume 3.0"));
    let err = ureq::get(&url)
        .set("X-Auth-Token", util::service::READER)
        .set("OpenStack-API-Version", "volume 3.99")
        .call()
        .unwrap_err();
    let ureq::Error::Status(406, r) = err else {
        panic!("expected 406")
    };
    let body: Value = r.into_json().unwrap();
    assert!(body["computeFault"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum is 3.71"));
    let missing = format!("{}/v3/backups/not-a-backup", s.url);
    let err = ureq::get(&missing)
        .set("X-Auth-Token", util::service::READER)
        .call()
        .unwrap_err();
    let ureq::Error::Status(404, r) = err else {
        panic!("expected 404")
    };
    let body: Value = r.into_json().unwrap();
    assert_eq!(
        body["itemNotFound"]["message"],
        "Backup not-a-backup could not be found."
    );
    let _ = bin;
}

/// Cinder's show reads one record (and its volume's others, for
/// `has_dependent_backups`), or the job that will create it; no cluster
/// needed: a file volume into a local store.
#[test]
fn cinder_show_tells_dependents_and_queued_backups() {
    let s = Service::start("", None);
    let src = s.dir.path("disk.img");
    util::make_image(&src, 64 * util::MIB, &[(0, 48 * util::MIB)], 11);
    let volume = s.register("disk", src.to_str().unwrap());
    let show = |id: &str| -> (u16, Value) {
        let url = format!("{}/v3/{PROJECT}/backups/{id}", s.url);
        let call = ureq::get(&url)
            .set("X-Auth-Token", util::service::READER)
            .call();
        match call {
            Ok(r) => (r.status(), r.into_json().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
            Err(e) => panic!("GET {url}: {e}"),
        }
    };
    let first = s.backup(&volume, "full")["backup_id"]
        .as_str()
        .unwrap()
        .to_string();
    let submit = || {
        let (status, job) = s.post(
            "/api/v1/backups",
            &serde_json::json!({"volume": volume, "mode": "incremental"}),
        );
        assert_eq!(status, 202, "{job}");
        job
    };
    let second = submit();
    // Queued behind the second on the same volume: no record yet.
    let third = submit();
    let third_id = third["backup_id"].as_str().unwrap();
    let (status, queued) = show(third_id);
    assert_eq!(status, 200, "{queued}");
    assert_eq!(queued["backup"]["status"], "creating", "{queued}");
    for job in [&second, &third] {
        let done = s.wait_job(job["id"].as_str().unwrap(), Duration::from_secs(120));
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    let (_, a) = show(&first);
    assert_eq!(a["backup"]["has_dependent_backups"], true, "{a}");
    assert_eq!(a["backup"]["status"], "available", "{a}");
    let (_, c) = show(third_id);
    assert_eq!(c["backup"]["has_dependent_backups"], false, "{c}");
    assert_eq!(c["backup"]["is_incremental"], true, "{c}");
    let (status, _) = show("6d3ac9b4-1111-4c2e-9c1e-5a5a5a5a5a5a");
    assert_eq!(status, 404);
}
