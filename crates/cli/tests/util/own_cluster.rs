//! A throwaway Ceph cluster of a test's own (scripts/ceph-cluster.sh under a
//! temp dir), for tests that take a cluster down or need a second one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A cluster living in a temp dir, stopped (and its daemons killed) on drop.
pub struct OwnCluster {
    dir: tempfile::TempDir,
    pub conf: PathBuf,
}

impl OwnCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = script(dir.path(), "start");
        let conf = PathBuf::from(out.lines().last().expect("conf path").trim());
        assert!(conf.is_file(), "no conf at {}", conf.display());
        OwnCluster { dir, conf }
    }

    /// Kills the monitor and the OSD at once, keeping their data.
    pub fn down(&self) {
        script(self.dir.path(), "down");
    }

    /// Restarts them on their data; returns once both pools serve I/O.
    pub fn up(&self) {
        script(self.dir.path(), "up");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = run_script(self.dir.path(), "stop");
    }
}

fn run_script(dir: &Path, command: &str) -> (bool, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ceph-cluster.sh");
    // Files, not pipes: the daemons inherit the script's stdout and stderr
    // while they start, and a pipe would stay open as long as they run.
    let out_path = dir.join(format!("{command}.out"));
    let err_path = dir.join(format!("{command}.err"));
    // A CEPH_MON_PORT of the user's is the suite's main cluster's port: a
    // cluster of our own must pick a free one (the script does, under a
    // lock shared with every other start on the machine).
    let status = Command::new("bash")
        .arg(script)
        .arg(command)
        .arg(dir)
        .env_remove("CEPH_MON_PORT")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("script stdout"))
        .stderr(File::create(&err_path).expect("script stderr"))
        .status()
        .expect("run ceph-cluster.sh");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status.success(), read(&out_path), read(&err_path))
}

fn script(dir: &Path, command: &str) -> String {
    let (ok, out, err) = run_script(dir, command);
    assert!(ok, "ceph-cluster.sh {command} failed:\n{err}");
    out
}
