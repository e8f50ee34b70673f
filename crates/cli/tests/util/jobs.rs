//! Jobs of a real `blockback serve` on the test cluster: submitting,
//! watching, checking how they overlapped, and what they left behind.

use super::ceph::{rbd, unique};
use super::service::{Service, ADMIN};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The largest number of jobs whose [started, finished] intervals overlap.
pub fn max_overlap(jobs: &[&Value]) -> usize {
    let mut events: Vec<(f64, i32)> = Vec::new();
    for j in jobs {
        events.push((j["started_at"].as_f64().unwrap(), 1));
        events.push((j["finished_at"].as_f64().unwrap(), -1));
    }
    // Ends before starts at equal times: a slot freed is a slot taken.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0, 0);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

pub fn submit(s: &Service, volume: &str) -> String {
    let (status, job) = s.post("/api/v1/backups", &json!({"volume": volume}));
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_string()
}

/// Deletes the test's backups (through the service) and images.
pub fn cleanup(conf: &Path, s: &Service, images: &[String]) {
    let backups = s.get("/api/v1/backups");
    let mut ids: Vec<String> = backups["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    ids.reverse();
    for id in ids {
        let (_, job) = s.call("DELETE", &format!("/api/v1/backups/{id}"), ADMIN, None);
        if let Some(j) = job["id"].as_str() {
            s.wait_job(j, Duration::from_secs(120));
        }
    }
    for image in images {
        let _ = std::process::Command::new("rbd")
            .arg("-c")
            .arg(conf)
            .args(["rm", &format!("volumes/{image}")])
            .output();
    }
}

/// A volume big enough that its transfer takes a while.
pub fn big_volume(conf: &Path, s: &Service, name: &str) -> (String, String) {
    let image = unique(name);
    let spec = format!("volumes/{image}");
    rbd(conf, &["create", &spec, "--size", "384M"]);
    rbd(
        conf,
        &[
            "bench",
            "--io-type",
            "write",
            "--io-size",
            "4M",
            "--io-total",
            "384M",
            "--io-pattern",
            "seq",
            &spec,
        ],
    );
    let id = s.register(&image, &format!("rbd:{spec}"));
    (image, id)
}

/// Waits until job `id` is transferring data.
pub fn wait_transferring(s: &Service, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = s.get(&format!("/api/v1/jobs/{id}"));
        if job["state"] == "running" && job["bytes_done"].as_u64().unwrap_or(0) > 0 {
            return job;
        }
        assert!(
            job["state"] == "running" || job["state"] == "queued",
            "job ended before its transfer was seen: {job}"
        );
        assert!(Instant::now() < deadline, "no transfer seen: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The chain bases of `volume` in the store, and the backup snapshots on its source.
pub fn leftovers(conf: &Path, volume: &str, image: &str) -> (Vec<String>, Vec<String>) {
    let bases = rbd(conf, &["ls", "backups"])
        .lines()
        .filter(|l| l.contains(volume))
        .map(str::to_string)
        .collect();
    let snaps = rbd(conf, &["snap", "ls", &format!("volumes/{image}")])
        .lines()
        .filter(|l| l.contains("backup."))
        .map(str::to_string)
        .collect();
    (bases, snaps)
}
