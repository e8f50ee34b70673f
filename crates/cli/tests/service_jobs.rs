//! Jobs of `blockback serve` on the real test cluster: 8 volumes backed up
//! at once with the limit at 4 (never more than 4 running, never two on
//! one volume, all complete), cancel during the transfer, and kill -9 of
//! the service mid-job (the job is failed at the next start, the next
//! backup succeeds, nothing leaks).

mod util;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use util::ceph::{cluster, rbd, scatter_writes, unique};
use util::service::Service;

fn config(conf: &Path, max_running: usize) -> String {
    format!(
        "[jobs]\nmax_running = {max_running}\nheartbeat_secs = 0.2\nlease_secs = 6\n\
         [clusters.default]\nconf = \"{}\"\n",
        conf.display()
    )
}

/// The largest number of jobs whose [started, finished] intervals overlap.
fn max_overlap(jobs: &[&Value]) -> usize {
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

fn submit(s: &Service, volume: &str) -> String {
    let (status, job) = s.post("/api/v1/backups", &json!({"volume": volume}));
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_string()
}

#[test]
fn eight_volumes_at_once_with_a_limit_of_four() {
    let Some(conf) = cluster() else { return };
    let s = Service::start(&config(&conf, 4), Some("rbd:backups"));
    let images: Vec<String> = (0..8).map(|i| unique(&format!("conc{i}"))).collect();
    for image in &images {
        rbd(
            &conf,
            &["create", &format!("volumes/{image}"), "--size", "32M"],
        );
        scatter_writes(&conf, &format!("volumes/{image}"), "4M");
    }
    let volumes: Vec<String> = images
        .iter()
        .map(|i| s.register(i, &format!("rbd:volumes/{i}")))
        .collect();
    // Two backups of the first volume: they must run one after the other.
    let mut ids: Vec<String> = volumes.iter().map(|v| submit(&s, v)).collect();
    ids.push(submit(&s, &volumes[0]));
    let jobs: Vec<Value> = ids
        .iter()
        .map(|id| s.wait_job(id, Duration::from_secs(300)))
        .collect();
    for j in &jobs {
        assert_eq!(j["state"], "succeeded", "{j}\n{}", s.log());
    }
    let all: Vec<&Value> = jobs.iter().collect();
    let overlap = max_overlap(&all);
    assert!(overlap <= 4, "{overlap} jobs ran at once with a limit of 4");
    assert!(overlap >= 2, "jobs never ran concurrently (max {overlap})");
    let first_volume: Vec<&Value> = jobs
        .iter()
        .filter(|j| j["volume_id"] == volumes[0].as_str())
        .collect();
    assert_eq!(first_volume.len(), 2);
    assert_eq!(
        max_overlap(&first_volume),
        1,
        "two jobs ran on one volume at once"
    );
    for (v, image) in volumes.iter().zip(&images) {
        let listed = s.get(&format!("/api/v1/backups?volume_id={v}&status=available"));
        assert!(
            !listed["items"].as_array().unwrap().is_empty(),
            "no backup of {image}"
        );
    }
    cleanup(&conf, &s, &images);
}

/// Deletes the test's backups (through the service) and images.
fn cleanup(conf: &Path, s: &Service, images: &[String]) {
    let backups = s.get("/api/v1/backups");
    let mut ids: Vec<String> = backups["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    ids.reverse();
    for id in ids {
        let (_, job) = s.call(
            "DELETE",
            &format!("/api/v1/backups/{id}"),
            util::service::ADMIN,
            None,
        );
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
fn big_volume(conf: &Path, s: &Service, name: &str) -> (String, String) {
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
fn wait_transferring(s: &Service, id: &str) -> Value {
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
fn leftovers(conf: &Path, volume: &str, image: &str) -> (Vec<String>, Vec<String>) {
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

#[test]
fn cancel_during_the_transfer_publishes_nothing() {
    let Some(conf) = cluster() else { return };
    let s = Service::start(&config(&conf, 4), Some("rbd:backups"));
    let (image, vid) = big_volume(&conf, &s, "cancel");
    let id = submit(&s, &vid);
    let running = wait_transferring(&s, &id);
    assert!(
        running["bytes_total"].as_u64().unwrap() > 0 && running["phase"] != "queued",
        "{running}"
    );
    // Progress as people read it: a rate, and an ETA from it.
    assert!(
        running["rate"].as_f64().unwrap() > 0.0 && running["eta_seconds"].as_f64().is_some(),
        "{running}"
    );
    let (status, answer) = s.post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}));
    assert_eq!(status, 202, "{answer}");
    let done = s.wait_job(&id, Duration::from_secs(60));
    assert_eq!(done["state"], "cancelled", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("cancelled"),
        "{done}"
    );
    let backup = s.get(&format!(
        "/api/v1/backups/{}",
        done["backup_id"].as_str().unwrap()
    ));
    assert_eq!(backup["status"], "error", "{backup}");
    assert_eq!(
        leftovers(&conf, &vid, &image),
        (vec![], vec![]),
        "a cancelled backup left data"
    );
    let next = s.backup(&vid, "auto");
    assert_eq!(next["state"], "succeeded");
    cleanup(&conf, &s, &[image]);
}

#[test]
fn kill_9_mid_job_then_restart() {
    let Some(conf) = cluster() else { return };
    let mut s = Service::start(&config(&conf, 4), Some("rbd:backups"));
    let (image, vid) = big_volume(&conf, &s, "kill9");
    let id = submit(&s, &vid);
    wait_transferring(&s, &id);
    s.kill9();
    s.spawn();
    let job = s.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("service stopped"),
        "{job}"
    );
    // The killed process's cluster lock on the volume holds until its
    // lease (half the job lease: 3 s) runs out; the restarted worker's
    // reaper cleans up then.
    let path = format!("/api/v1/backups/{}", job["backup_id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut backup = s.get(&path);
    while backup["status"] != "error" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(250));
        backup = s.get(&path);
    }
    assert_eq!(backup["status"], "error", "{backup}");
    assert_eq!(
        leftovers(&conf, &vid, &image).0,
        Vec::<String>::new(),
        "the killed backup's base leaked"
    );
    let next = s.backup(&vid, "auto");
    let b = s.get(&format!(
        "/api/v1/backups/{}",
        next["backup_id"].as_str().unwrap()
    ));
    let (bases, snaps) = leftovers(&conf, &vid, &image);
    assert_eq!(
        bases,
        vec![b["image"].as_str().unwrap().to_string()],
        "only the new chain's base"
    );
    assert_eq!(
        snaps.len(),
        1,
        "only the new backup's source snapshot: {snaps:?}"
    );
    cleanup(&conf, &s, &[image]);
}
