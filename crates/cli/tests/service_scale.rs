//! Scale-out (issue 13): two `blockback serve` workers on one PostgreSQL
//! catalog and the test Ceph cluster. Backups of 20 volumes requested
//! through both workers' APIs at once each run exactly once, never two on
//! one volume at a time, and restore bit-exact; kill -9 of the worker
//! running a job: the other one fails the job within the lease, its
//! volume lock runs out, nothing leaks and the next backup succeeds; a CLI
//! backup (as from another host) of a volume a worker is backing up fails
//! with "volume busy" naming the holder.

mod util;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use util::ceph::{cluster, rbd, scatter_writes, unique};
use util::jobs::{big_volume, cleanup, leftovers, max_overlap, wait_transferring};
use util::service::Service;
use util::{sha256, Dir};

/// The job lease of the tests' workers; their cluster locks' is half.
const LEASE_SECS: u64 = 6;

fn config(conf: &Path) -> String {
    format!(
        "[jobs]\nmax_running = 4\nheartbeat_secs = 0.2\nlease_secs = {LEASE_SECS}\n\
         [clusters.default]\nconf = \"{}\"\n",
        conf.display()
    )
}

/// Two workers, `w1` and `w2`, on a fresh catalog; the restore directory
/// they share.
fn two_workers(conf: &Path, pg: &str) -> (Vec<Service>, Dir) {
    let catalog = util::postgres::fresh_catalog(pg);
    let restores = Dir::new();
    let workers = ["w1", "w2"]
        .iter()
        .map(|w| {
            Service::start_shared(
                &config(conf),
                "rbd:backups",
                &catalog,
                w,
                restores.tmp.path(),
            )
        })
        .collect();
    (workers, restores)
}

/// `n` small images with scattered data, made four at a time.
fn small_images(conf: &Path, n: usize) -> Vec<String> {
    let images: Vec<String> = (0..n).map(|i| unique(&format!("scale{i}"))).collect();
    for group in images.chunks(4) {
        std::thread::scope(|s| {
            for image in group {
                s.spawn(move || {
                    let spec = format!("volumes/{image}");
                    rbd(conf, &["create", &spec, "--size", "8M"]);
                    scatter_writes(conf, &spec, "1M");
                });
            }
        });
    }
    images
}

/// Queues a backup of each volume through `s`; the job ids.
fn submit_all(s: &Service, volumes: &[String]) -> Vec<String> {
    volumes
        .iter()
        .map(|v| {
            let (status, job) = s.post("/api/v1/backups", &json!({"volume": v}));
            assert_eq!(status, 202, "{job}");
            job["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// How many times each job id was started, from both workers' logs.
fn starts(workers: &[Service], ids: &[String]) -> BTreeMap<String, usize> {
    let logs: Vec<String> = workers.iter().map(Service::log).collect();
    ids.iter()
        .map(|id| {
            let n = logs
                .iter()
                .flat_map(|l| l.lines())
                .filter(|l| l.contains("job started") && l.contains(id.as_str()))
                .count();
            (id.clone(), n)
        })
        .collect()
}

#[test]
fn two_workers_back_up_twenty_volumes_once_each_one_job_per_volume() {
    let Some(conf) = cluster() else { return };
    let Some(pg) = util::postgres::server() else {
        return;
    };
    let (w, restores) = two_workers(&conf, &pg);
    let images = small_images(&conf, 20);
    let volumes: Vec<String> = images
        .iter()
        .map(|i| w[0].register(i, &format!("rbd:volumes/{i}")))
        .collect();
    // Every volume twice, once through each worker's API, at the same time.
    let ids: Vec<String> = std::thread::scope(|s| {
        let all: Vec<_> = w
            .iter()
            .map(|x| s.spawn(|| submit_all(x, &volumes)))
            .collect();
        all.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 40, "{ids:?}");
    // Any worker answers for any job: each is waited for through the other.
    let jobs: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| w[(i / 20 + 1) % 2].wait_job(id, Duration::from_secs(300)))
        .collect();
    for j in &jobs {
        assert_eq!(
            j["state"],
            "succeeded",
            "{j}\n{}\n{}",
            w[0].log(),
            w[1].log()
        );
    }
    let ran_on: BTreeSet<&str> = jobs.iter().map(|j| j["worker"].as_str().unwrap()).collect();
    assert_eq!(
        ran_on,
        BTreeSet::from(["w1", "w2"]),
        "both workers ran jobs"
    );
    for (id, n) in starts(&w, &ids) {
        assert_eq!(n, 1, "job {id} started {n} times");
    }
    for v in &volumes {
        let of_v: Vec<&Value> = jobs
            .iter()
            .filter(|j| j["volume_id"] == v.as_str())
            .collect();
        assert_eq!(of_v.len(), 2);
        assert_eq!(
            max_overlap(&of_v),
            1,
            "two jobs ran on volume {v} at once: {of_v:?}"
        );
    }
    let all: Vec<&Value> = jobs.iter().collect();
    assert!(
        max_overlap(&all) <= 8,
        "more jobs at once than both limits allow"
    );
    restore_all_bit_exact(&conf, &w, &jobs, &images, &volumes, restores.tmp.path());
    cleanup(&conf, &w[0], &images);
}

/// Restores the last backup of each volume, alternating the workers asked,
/// and compares each with its (unchanged) source image.
fn restore_all_bit_exact(
    conf: &Path,
    w: &[Service],
    jobs: &[Value],
    images: &[String],
    volumes: &[String],
    dir: &Path,
) {
    let restore_jobs: Vec<(String, &String)> = volumes
        .iter()
        .zip(images)
        .enumerate()
        .map(|(i, (v, image))| {
            let last = jobs
                .iter()
                .filter(|j| j["volume_id"] == v.as_str())
                .max_by(|a, b| {
                    a["finished_at"]
                        .as_f64()
                        .unwrap()
                        .total_cmp(&b["finished_at"].as_f64().unwrap())
                })
                .unwrap();
            let target = dir.join(format!("{image}.img"));
            let (status, job) = w[i % 2].post(
                &format!(
                    "/api/v1/backups/{}/restore",
                    last["backup_id"].as_str().unwrap()
                ),
                &json!({"path": target.display().to_string()}),
            );
            assert_eq!(status, 202, "{job}");
            (job["id"].as_str().unwrap().to_string(), image)
        })
        .collect();
    for (i, (id, image)) in restore_jobs.iter().enumerate() {
        let done = w[(i + 1) % 2].wait_job(id, Duration::from_secs(300));
        assert_eq!(done["state"], "succeeded", "{done}");
        let expected = dir.join(format!("{image}.expected"));
        rbd(
            conf,
            &[
                "export",
                &format!("volumes/{image}"),
                &expected.display().to_string(),
            ],
        );
        assert_eq!(
            sha256(&dir.join(format!("{image}.img"))),
            sha256(&expected),
            "the restore of {image} is not bit-exact"
        );
    }
}

/// The objects in the store's pool.
fn backup_pool_objects(conf: &Path) -> Vec<String> {
    let out = std::process::Command::new("rados")
        .arg("-c")
        .arg(conf)
        .args(["-p", "backups", "ls"])
        .output()
        .expect("rados CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The RADOS lock objects of `volume` in the store's pool.
fn lock_objects(conf: &Path, volume: &str) -> Vec<String> {
    backup_pool_objects(conf)
        .into_iter()
        .filter(|l| l.starts_with("blockback.lock.") && l.contains(volume))
        .collect()
}

#[test]
fn kill_9_of_one_worker_mid_job_the_other_fails_it_and_cleans_up() {
    let Some(conf) = cluster() else { return };
    let Some(pg) = util::postgres::server() else {
        return;
    };
    let (mut w, _restores) = two_workers(&conf, &pg);
    let (image, vid) = big_volume(&conf, &w[0], "scalekill");
    let (status, job) = w[1].post("/api/v1/backups", &json!({"volume": vid}));
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let running = wait_transferring(&w[0], &id);
    let victim = match running["worker"].as_str().unwrap() {
        "w1" => 0,
        _ => 1,
    };
    let survivor = 1 - victim;
    w[victim].kill9();
    let killed_at = Instant::now();
    // Failed once the job's lease ran out, found within half a lease more.
    let limit = Duration::from_secs(LEASE_SECS * 3 / 2 + 3);
    let job = loop {
        let job = w[survivor].get(&format!("/api/v1/jobs/{id}"));
        if job["state"] != "running" {
            break job;
        }
        assert!(
            killed_at.elapsed() < limit,
            "not failed within {limit:?}: {job}\n{}",
            w[survivor].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let failed_after = killed_at.elapsed();
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("stopped renewing the job's lease"),
        "{error}"
    );
    let survivor_name = ["w1", "w2"][survivor];
    assert!(
        error.contains(&format!("worker {survivor_name} marked it failed")),
        "{error}"
    );
    eprintln!("the killed worker's job was failed {failed_after:?} after the kill");
    // The survivor's reaper removes the partial backup once the dead
    // worker's volume lock ran out (half the job lease).
    let path = format!("/api/v1/backups/{}", job["backup_id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut backup = w[survivor].get(&path);
    while backup["status"] != "error" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        backup = w[survivor].get(&path);
    }
    assert_eq!(backup["status"], "error", "{backup}\n{}", w[survivor].log());
    assert_eq!(
        lock_objects(&conf, &vid),
        Vec::<String>::new(),
        "the volume lock leaked"
    );
    // Its base is gone; its source snapshot may still be on its way out
    // (removing it waits for the dead worker's exclusive lock on the
    // image to be broken): checked after the next backup.
    assert_eq!(
        leftovers(&conf, &vid, &image).0,
        Vec::<String>::new(),
        "the killed backup's base leaked"
    );
    let next = w[survivor].backup(&vid, "auto");
    let b = w[survivor].get(&format!(
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
    assert_eq!(
        lock_objects(&conf, &vid),
        Vec::<String>::new(),
        "a lock was left held"
    );
    cleanup(&conf, &w[survivor], &[image]);
    // A worker on a PostgreSQL catalog stops cleanly on SIGTERM.
    let status = w[survivor].terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", w[survivor].log());
}

/// The CLI on the workers' catalog and store, with a data directory of its
/// own: as an operator would run it on another host.
fn cli_elsewhere(conf: &Path, catalog: &str, home: &Dir, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_blockback"))
        .arg("--ceph-conf")
        .arg(conf)
        .args(["--store", "rbd:backups", "--catalog", catalog])
        .args(args)
        .env("XDG_DATA_HOME", home.tmp.path())
        .env_remove("BLOCKBACK_STORE")
        .env_remove("BLOCKBACK_CATALOG")
        .output()
        .expect("run blockback")
}

#[test]
fn a_cli_backup_of_a_volume_a_worker_is_backing_up_fails_volume_busy() {
    let Some(conf) = cluster() else { return };
    let Some(pg) = util::postgres::server() else {
        return;
    };
    let catalog = util::postgres::fresh_catalog(&pg);
    let restores = Dir::new();
    let s = Service::start_shared(
        &config(&conf),
        "rbd:backups",
        &catalog,
        "w1",
        restores.tmp.path(),
    );
    let (image, vid) = big_volume(&conf, &s, "scalecli");
    let (status, job) = s.post("/api/v1/backups", &json!({"volume": vid}));
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    wait_transferring(&s, &id);
    let home = Dir::new();
    let source = format!("rbd:volumes/{image}");
    let out = cli_elsewhere(&conf, &catalog, &home, &["backup", "create", &source]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("volume busy"), "{stderr}");
    assert!(
        stderr.contains("blockback on "),
        "names the holder: {stderr}"
    );
    let done = s.wait_job(&id, Duration::from_secs(300));
    assert_eq!(
        done["state"], "succeeded",
        "the worker's backup went on: {done}"
    );
    // Once the worker is done, the same command succeeds.
    let out = cli_elsewhere(&conf, &catalog, &home, &["backup", "create", &source]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = s.get(&format!("/api/v1/backups?volume_id={vid}&status=available"));
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
    cleanup(&conf, &s, &[image]);
}

/// A CLI killed mid-backup into an RBD store leaves its cluster lock until
/// the lease runs out (BLOCKBACK_LOCK_LEASE_SECS, 6 s here): a second
/// command meanwhile is refused, told who holds the lock and until when;
/// after the lease the next backup succeeds and the killed one is cleaned up.
#[test]
fn a_killed_cli_keeps_the_volume_until_its_lease_and_the_refusal_says_so() {
    let Some(conf) = cluster() else { return };
    let dir = Dir::new();
    let image = unique("clikill");
    let spec = format!("volumes/{image}");
    rbd(&conf, &["create", &spec, "--size", "384M"]);
    let mut fill = vec!["bench", "--io-type", "write", "--io-size", "4M"];
    fill.extend(["--io-total", "384M", "--io-pattern", "seq", spec.as_str()]);
    rbd(&conf, &fill);
    let source = format!("rbd:{spec}");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = [
            "--ceph-conf",
            &conf.display().to_string(),
            "--store",
            "rbd:backups",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.extend(extra.iter().map(|s| s.to_string()));
        all
    };
    let run = |extra: &[&str]| {
        let all = args(extra);
        dir.command(&all.iter().map(String::as_str).collect::<Vec<_>>())
            .env("BLOCKBACK_LOCK_LEASE_SECS", "6")
            .output()
            .expect("run blockback")
    };
    let all = args(&["backup", "create", &source]);
    let mut child = dir
        .command(&all.iter().map(String::as_str).collect::<Vec<_>>())
        .env("BLOCKBACK_LOCK_LEASE_SECS", "6")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(
        util::wait_for_creating(&dir, &mut child),
        "the backup never started"
    );
    let pid = child.id();
    let _ = child.kill();
    let _ = child.wait();
    let killed_at = Instant::now();
    let out = run(&["backup", "create", &source]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("volume busy"), "{stderr}");
    assert!(stderr.contains("held by blockback on "), "{stderr}");
    assert!(
        stderr.contains(&format!(" pid {pid} until ")),
        "names the killed process: {stderr}"
    );
    assert!(stderr.contains(" UTC (in "), "says until when: {stderr}");
    // Past the lease, the lock has lapsed: the next backup runs.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(killed_at.elapsed()));
    let out = run(&["--json", "backup", "create", &source]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = util::ceph::json(&dir, &conf, &["--store", "rbd:backups", "backup", "list"]);
    let statuses: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 2, "{list}");
    assert!(
        statuses.contains(&"error") && statuses.contains(&"available"),
        "{list}"
    );
    let volume = list[0]["volume_id"].as_str().unwrap();
    assert_eq!(
        lock_objects(&conf, volume),
        Vec::<String>::new(),
        "a lock was left held"
    );
    let (bases, snaps) = leftovers(&conf, volume, &image);
    assert_eq!(bases.len(), 1, "only the new chain's base: {bases:?}");
    assert_eq!(snaps.len(), 1, "only the new backup's snapshot: {snaps:?}");
    for b in list.as_array().unwrap().iter().rev() {
        run(&["backup", "delete", b["id"].as_str().unwrap()]);
    }
    let _ = std::process::Command::new("rbd")
        .arg("-c")
        .arg(&conf)
        .args(["rm", &spec])
        .output();
}

/// The digest segments (`backup.<id>.digests.<n>`) in the store's pool.
fn digest_objects(conf: &Path) -> Vec<String> {
    backup_pool_objects(conf)
        .into_iter()
        .filter(|l| l.starts_with("backup.") && l.contains(".digests."))
        .collect()
}

#[test]
fn a_chain_made_through_one_worker_continues_incrementally_through_the_other() {
    let Some(conf) = cluster() else { return };
    let Some(pg) = util::postgres::server() else {
        return;
    };
    // Separate state_dirs, as on two hosts: only the catalog and the store
    // are shared.
    let (w, restores) = two_workers(&conf, &pg);
    let image = unique("handover");
    let spec = format!("volumes/{image}");
    rbd(&conf, &["create", &spec, "--size", "8M"]);
    scatter_writes(&conf, &spec, "2M");
    let volume = w[0].register(&image, &format!("rbd:{spec}"));
    let mut backups = vec![w[0].backup(&volume, "full")["backup_id"].clone()];
    // Each worker continues the chain the other one just grew.
    for i in 1..4 {
        scatter_writes(&conf, &spec, "64K");
        let job = w[i % 2].backup(&volume, "incremental");
        let shown = w[0].get(&format!(
            "/api/v1/backups/{}",
            job["backup_id"].as_str().unwrap()
        ));
        assert_eq!(
            (shown["kind"].as_str(), &shown["parent"]),
            (Some("incremental"), &backups[i - 1]),
            "{shown}"
        );
        let written = shown["bytes_written"].as_u64().unwrap();
        assert!(
            written <= 1024 * 1024,
            "incremental {i} wrote {written} bytes for 64 KiB changed"
        );
        backups.push(job["backup_id"].clone());
    }
    for (worker, n) in [(&w[1], 2), (&w[0], 1)] {
        let fetched = worker.log().matches("fetched the block digests").count();
        assert_eq!(fetched, n, "{}", worker.log());
    }
    let target = restores.tmp.path().join("handover.img");
    let last = backups[3].as_str().unwrap();
    let (status, job) = w[1].post(
        &format!("/api/v1/backups/{last}/restore"),
        &json!({"path": target.display().to_string()}),
    );
    assert_eq!(status, 202, "{job}");
    let done = w[0].wait_job(job["id"].as_str().unwrap(), Duration::from_secs(120));
    assert_eq!(done["state"], "succeeded", "{done}");
    let expected = restores.tmp.path().join("handover.expected");
    rbd(&conf, &["export", &spec, &expected.display().to_string()]);
    assert_eq!(
        sha256(&target),
        sha256(&expected),
        "the restore is not bit-exact"
    );
    cleanup(&conf, &w[1], &[image]);
    let left: Vec<String> = digest_objects(&conf)
        .into_iter()
        .filter(|o| backups.iter().any(|b| o.contains(b.as_str().unwrap())))
        .collect();
    assert!(
        left.is_empty(),
        "digest segments left after delete: {left:?}"
    );
}
