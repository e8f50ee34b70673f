//! Jobs of `blockback serve` on the real test cluster: 8 volumes backed up
//! at once with the limit at 4 (never more than 4 running, never two on
//! one volume, all complete), cancel during the transfer, and kill -9 of
//! the service mid-job (the job is failed at the next start, the next
//! backup succeeds, nothing leaks); librados' threads run at the jobs'
//! nice value.

mod util;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use util::ceph::{cluster, rbd, scatter_writes, unique};
use util::jobs::{big_volume, cleanup, leftovers, max_overlap, submit, wait_transferring};
use util::service::Service;

fn config(conf: &Path, max_running: usize) -> String {
    format!(
        "[jobs]\nmax_running = {max_running}\nheartbeat_secs = 0.2\nlease_secs = 6\n\
         [clusters.default]\nconf = \"{}\"\n",
        conf.display()
    )
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

/// The thread name and nice value in a /proc stat line
/// ("tid (name) state ...", the nice value its 19th field).
fn name_and_nice(stat: &str) -> (String, i32) {
    let (head, fields) = stat.rsplit_once(')').expect("a stat line");
    let name = head.split_once('(').expect("a thread name").1.to_string();
    let nice = fields.split_whitespace().nth(16).expect("a nice field");
    (name, nice.parse().expect("a numeric nice value"))
}

/// The name and nice value of each thread of process `pid`.
fn thread_priorities(pid: u32) -> Vec<(String, i32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the service's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        .map(|stat| name_and_nice(&stat))
        .collect()
}

/// librados' threads (messenger workers, finishers) do the I/O of every
/// job: they run at the jobs' nice value, the API's threads at the
/// service's own, so requests are answered while backups run.
#[test]
fn cluster_threads_run_at_the_jobs_nice_value() {
    let Some(conf) = cluster() else { return };
    let s = Service::start(
        &config(&conf, 4).replacen("[jobs]\n", "[jobs]\nnice = 13\n", 1),
        Some("rbd:backups"),
    );
    let (status, body) = s.call("GET", "/api/v1/health/ready", util::service::ADMIN, None);
    assert_eq!(status, 200, "{body}");
    let threads = thread_priorities(s.pid());
    let messengers: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("msgr-worker"))
        .collect();
    assert!(
        !messengers.is_empty(),
        "no librados messenger thread: {threads:?}"
    );
    for (name, nice) in &messengers {
        assert_eq!(*nice, 13, "{name} runs at nice {nice}: {threads:?}");
    }
    let own = std::fs::read_to_string(format!("/proc/{}/stat", s.pid())).unwrap();
    let (_, started_at) = name_and_nice(&own);
    let api: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name == "blockback-serve")
        .collect();
    assert!(!api.is_empty(), "no API thread: {threads:?}");
    for (name, nice) in &api {
        assert_eq!(
            *nice, started_at,
            "{name} runs at nice {nice}, the service at {started_at}"
        );
    }
}
