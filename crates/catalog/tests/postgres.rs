//! The PostgreSQL catalog against a real server: the URL of a throwaway
//! one (scripts/postgres.sh, started by scripts/test.sh) comes in
//! BLOCKBACK_TEST_POSTGRES_URL. Without it these tests pass with a note,
//! unless BLOCKBACK_REQUIRE_POSTGRES=1 (as in CI): then they fail.
//!
//! Each catalog lives in a schema of its own (`search_path` in the URL's
//! options), so tests run side by side on one database.

use blockback_catalog::{PgCatalog, PG_SCHEMA_VERSION};
use blockback_core::catalog::{
    Catalog, CatalogError, JobClaim, JobEnd, JobFilter, JobKind, JobRecord, JobState,
};
use uuid::Uuid;

fn server_url() -> Option<String> {
    match std::env::var("BLOCKBACK_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("BLOCKBACK_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "BLOCKBACK_REQUIRE_POSTGRES=1 but BLOCKBACK_TEST_POSTGRES_URL is not set: \
                 start a server with scripts/postgres.sh start DIR"
            );
            eprintln!("SKIPPED: BLOCKBACK_TEST_POSTGRES_URL is not set (scripts/postgres.sh)");
            None
        }
    }
}

/// A new, empty schema; the URL of a catalog in it.
fn fresh_schema(url: &str) -> String {
    let schema = format!("t_{}", Uuid::new_v4().simple());
    let mut admin = postgres::Client::connect(url, postgres::NoTls).expect("test server");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

fn fresh(url: &str) -> PgCatalog {
    PgCatalog::connect(&fresh_schema(url)).unwrap()
}

fn schema_version(url: &str) -> i64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .query_one("SELECT version FROM blockback_schema", &[])
        .unwrap()
        .get(0)
}

#[test]
fn passes_the_catalog_conformance_suite() {
    let Some(url) = server_url() else { return };
    blockback_core::catalog::conformance::run_catalog_suite(&|| Box::new(fresh(&url)));
}

/// Workers starting at once on a new database migrate it once; a reopen
/// finds it current and keeps the records.
#[test]
fn concurrent_first_connects_migrate_once() {
    let Some(url) = server_url() else { return };
    let catalog_url = fresh_schema(&url);
    let opened: Vec<PgCatalog> = std::thread::scope(|s| {
        let all: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PgCatalog::connect(&catalog_url)))
            .collect();
        all.into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect()
    });
    let job = JobRecord::queued(JobKind::Backup, Uuid::new_v4(), None, "{}".into(), 1.0);
    opened[0].insert_job(&job).unwrap();
    assert_eq!(opened[3].job(job.id).unwrap(), job);
    let again = PgCatalog::connect(&catalog_url).unwrap();
    assert_eq!(again.job(job.id).unwrap(), job);
    assert_eq!(schema_version(&catalog_url), PG_SCHEMA_VERSION);
}

#[test]
fn newer_schema_is_refused_and_left_alone() {
    let Some(url) = server_url() else { return };
    let catalog_url = fresh_schema(&url);
    drop(PgCatalog::connect(&catalog_url).unwrap());
    let mut client = postgres::Client::connect(&catalog_url, postgres::NoTls).unwrap();
    let newer = PG_SCHEMA_VERSION + 1;
    client
        .execute("UPDATE blockback_schema SET version = $1", &[&newer])
        .unwrap();
    match PgCatalog::connect(&catalog_url) {
        Err(CatalogError::NewerSchema { found, known, .. }) => {
            assert_eq!((found, known), (newer, PG_SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {:?}", other.map(|_| ())),
    }
    assert_eq!(schema_version(&catalog_url), newer);
}

/// A wrong password or an unreachable server is one clear error, and the
/// password never appears in it.
#[test]
fn connection_errors_are_clear_and_hide_the_password() {
    let Some(url) = server_url() else { return };
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user_pass, host) = rest.split_once('@').unwrap();
    let user = user_pass.split(':').next().unwrap();
    let wrong = format!("{scheme}://{user}:not-the-password-xyz@{host}");
    let e = PgCatalog::connect(&wrong)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("not-the-password-xyz"), "{e}");
    let nobody = format!("{scheme}://{user}:secret-xyz@127.0.0.1:1/blockback?connect_timeout=5");
    let e = PgCatalog::connect(&nobody)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("127.0.0.1:1") && !e.contains("secret-xyz"),
        "{e}"
    );
    assert!(e.to_lowercase().contains("connect"), "{e}");
}

/// Two catalogs on one database (as two hosts have) claiming at once:
/// every job runs once, never two of one volume at a time.
#[test]
fn two_processes_claim_exclusively() {
    let Some(url) = server_url() else { return };
    let catalog_url = fresh_schema(&url);
    let hosts = [
        PgCatalog::connect(&catalog_url).unwrap(),
        PgCatalog::connect(&catalog_url).unwrap(),
    ];
    let volumes: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for i in 0..48 {
        let v = volumes[i % volumes.len()];
        let job = JobRecord::queued(JobKind::Backup, v, None, "{}".into(), i as f64);
        hosts[0].insert_job(&job).unwrap();
    }
    let claimed: Vec<Vec<JobRecord>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let cat: &PgCatalog = &hosts[t % 2];
                s.spawn(move || claim_until_idle(cat, &format!("h{}w{t}", t % 2)))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut ids: Vec<Uuid> = claimed.iter().flatten().map(|j| j.id).collect();
    assert_eq!(ids.len(), 48, "every job claimed once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 48, "no job claimed twice");
}

/// Claims, checks and finishes jobs until 50 claims in a row find none.
fn claim_until_idle(cat: &PgCatalog, name: &str) -> Vec<JobRecord> {
    let mut mine = Vec::new();
    let mut idle = 0;
    while idle < 50 {
        let claim = JobClaim {
            worker: name.into(),
            lease_secs: 30.0,
            clock: || 100.0,
        };
        let Some(job) = cat.claim_job(&claim).unwrap() else {
            idle += 1;
            continue;
        };
        idle = 0;
        let running = JobFilter {
            state: Some(JobState::Running),
            volume_id: Some(job.volume_id),
            ..Default::default()
        };
        let others = cat.list_jobs(&running).unwrap();
        assert_eq!(others.len(), 1, "two running jobs on one volume");
        let end = JobEnd {
            state: JobState::Succeeded,
            error: None,
            now: 101.0,
        };
        cat.finish_job(job.id, name, &end).unwrap();
        mine.push(job);
    }
    mine
}
