//! Schedules in the service, under a test clock (no sleeping for time to
//! pass): the real worker runs the queued backups of a file volume into a
//! local store, so the chain rule (a full backup every N incrementals) and
//! the retention applied after each run are the engine's own. A restart
//! after downtime over several slots gives one run.

use blockback_catalog::SqliteCatalog;
use blockback_core::catalog::{
    BackupKind, BackupStatus, Catalog, JobFilter, JobRecord, JobState, PolicyScope,
};
use blockback_core::retention::Policy;
use blockback_server::jobs::runner::OpsRunner;
use blockback_server::schedule::{Clock, Scheduler};
use blockback_server::server::Service;
use blockback_server::state::{AppState, NewVolume};
use blockback_server::ServiceConfig;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// 2026-01-05 00:00 UTC.
const T0: f64 = 1_767_571_200.0;
const HOUR: f64 = 3600.0;

#[derive(Default)]
struct TestClock(Mutex<f64>);

impl TestClock {
    fn set(&self, t: f64) {
        *self.0.lock().unwrap() = t;
    }
}

impl Clock for TestClock {
    fn now(&self) -> f64 {
        *self.0.lock().unwrap()
    }
}

struct Harness {
    state: Arc<AppState>,
    _runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
}

impl Harness {
    fn new(dir: &Path, schedules: &str) -> Self {
        let text = format!(
            "store = \"{}\"\ncatalog = \"{}\"\n[jobs]\nmax_running = 2\nheartbeat_secs = 0.1\n{schedules}",
            dir.join("store").display(),
            dir.join("catalog.sqlite").display()
        );
        std::fs::write(dir.join("blockback.toml"), text).unwrap();
        let config = Arc::new(ServiceConfig::load(Some(&dir.join("blockback.toml"))).unwrap());
        let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(&config.catalog).unwrap());
        let runner = Arc::new(OpsRunner::new(config.clone(), catalog.clone()).unwrap());
        let service = Service::new(config, catalog, runner.clone(), runner).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (stop, rx) = watch::channel(false);
        runtime.spawn(service.state.worker.clone().run(rx));
        Harness {
            state: service.state,
            _runtime: runtime,
            stop,
        }
    }

    fn scheduler(&self, clock: &Arc<TestClock>) -> Scheduler {
        let schedules = self.state.config.schedules().unwrap();
        Scheduler::new(self.state.clone(), schedules, clock.clone())
    }

    /// Waits (for the real work, not for time) until `job` is final.
    fn finished(&self, job: &JobRecord) -> JobRecord {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.state.catalog.job(job.id).unwrap();
            if now.state.is_final() {
                return now;
            }
            assert!(Instant::now() < deadline, "job not done: {now:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ticks at `at` and runs what it queued; returns their slots.
    fn tick_at(&self, clock: &Arc<TestClock>, s: &Scheduler, at: f64) -> Vec<f64> {
        clock.set(at);
        let queued = s.tick().unwrap();
        queued
            .iter()
            .map(|j| {
                let done = self.finished(j);
                assert_eq!(done.state, JobState::Succeeded, "{done:?}");
                let request: serde_json::Value = serde_json::from_str(&done.request).unwrap();
                request["scheduled"]["slot"].as_f64().unwrap()
            })
            .collect()
    }

    fn register(&self, name: &str, path: &Path) -> blockback_core::catalog::VolumeRecord {
        self.state
            .register_volume(NewVolume {
                id: None,
                name: name.into(),
                source: path.display().to_string(),
                cluster: None,
            })
            .unwrap()
    }

    fn kinds(&self, volume: uuid::Uuid) -> Vec<BackupKind> {
        let backups = self.state.catalog.list_backups(Some(volume)).unwrap();
        assert!(backups.iter().all(|b| b.status == BackupStatus::Available));
        backups.iter().map(|b| b.kind).collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn disk(path: &Path, seed: u8) {
    let mut f = std::fs::File::create(path).unwrap();
    for i in 0..64u32 {
        f.write_all(&[seed.wrapping_add(i as u8); 65536]).unwrap();
    }
}

fn touch(path: &Path, seed: u8) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(u64::from(seed) * 65536)).unwrap();
    f.write_all(&[seed; 4096]).unwrap();
}

const HOURLY: &str =
    "[schedules.hourly]\nvolumes = [\"db\"]\ncalendar = \"hourly\"\nfull_every = 2\n";

#[test]
fn a_schedule_fires_at_its_slots_with_chains_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), HOURLY);
    let src = dir.path().join("db.img");
    disk(&src, 1);
    let volume = |name: &str, path: &Path| h.register(name, path);
    let db = volume("db", &src);
    let other_src = dir.path().join("web.img");
    disk(&other_src, 2);
    let web = volume("web", &other_src);
    let keep_three = Policy {
        keep_last: 3,
        ..Policy::default()
    };
    h.state
        .catalog
        .set_policy(&PolicyScope::Volume(db.id), Some(&keep_three))
        .unwrap();

    let clock = Arc::new(TestClock::default());
    clock.set(T0 + 600.0);
    let s = h.scheduler(&clock);
    assert_eq!(
        h.tick_at(&clock, &s, T0 + 1800.0),
        Vec::<f64>::new(),
        "no slot yet"
    );
    assert_eq!(
        h.tick_at(&clock, &s, T0 + HOUR),
        vec![T0 + HOUR],
        "on the slot"
    );
    assert_eq!(
        h.tick_at(&clock, &s, T0 + HOUR + 30.0),
        Vec::<f64>::new(),
        "once"
    );
    for n in 2..=4 {
        touch(&src, n as u8);
        let at = T0 + f64::from(n) * HOUR + 5.0;
        assert_eq!(h.tick_at(&clock, &s, at), vec![T0 + f64::from(n) * HOUR]);
    }
    // full, incremental, incremental, full: a new chain after 2
    // incrementals; keep-last 3 removed the first full.
    assert_eq!(
        h.kinds(db.id),
        vec![
            BackupKind::Incremental,
            BackupKind::Incremental,
            BackupKind::Full
        ]
    );
    assert!(
        h.state
            .catalog
            .list_backups(Some(web.id))
            .unwrap()
            .is_empty(),
        "a volume the schedule does not name"
    );

    // The service stops after the 04:00 run and starts again at 09:30:
    // the five missed slots give one run, for 09:00, then the schedule
    // goes on at 10:00.
    drop(s);
    clock.set(T0 + 9.5 * HOUR);
    let restarted = h.scheduler(&clock);
    assert_eq!(
        h.tick_at(&clock, &restarted, T0 + 9.5 * HOUR),
        vec![T0 + 9.0 * HOUR]
    );
    assert_eq!(
        h.tick_at(&clock, &restarted, T0 + 9.9 * HOUR),
        Vec::<f64>::new()
    );
    assert_eq!(
        h.tick_at(&clock, &restarted, T0 + 10.0 * HOUR),
        vec![T0 + 10.0 * HOUR]
    );
    let jobs = h
        .state
        .catalog
        .list_jobs(&JobFilter {
            volume_id: Some(db.id),
            ..JobFilter::default()
        })
        .unwrap();
    assert_eq!(jobs.len(), 6, "4 runs, 1 catch-up, 1 on time");
    assert_eq!(h.kinds(db.id).len(), 3, "retention keeps 3");
}

#[test]
fn a_run_still_going_holds_the_next_slot_back() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), HOURLY);
    let src = dir.path().join("db.img");
    disk(&src, 3);
    h.register("db", &src);
    let clock = Arc::new(TestClock::default());
    clock.set(T0);
    let s = h.scheduler(&clock);
    // Stop the worker: the first run stays queued.
    h.stop.send(true).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    clock.set(T0 + HOUR);
    assert_eq!(s.tick().unwrap().len(), 1);
    clock.set(T0 + 2.0 * HOUR);
    assert!(
        s.tick().unwrap().is_empty(),
        "the 01:00 run has not run yet"
    );
}
