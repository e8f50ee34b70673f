//! blockback's Cinder backup driver (`cinder-driver/`, installed into the
//! test venv by `scripts/python-env.sh`) driven with real Cinder 29
//! objects on the real test cluster: `python/cinder_backup_driver.py`
//! runs one scenario per test and asserts as it goes.

mod util;
use std::path::Path;
use std::process::Command;
use util::ceph::*;
use util::python::python;
use util::service::{Service, ADMIN};
use util::*;

/// Runs one scenario of the driver script; panics with its output when
/// it fails.
fn scenario(name: &str, extra: &[&str]) {
    let Some(conf) = cluster() else { return };
    let Some(python) = python() else { return };
    run_scenario(&conf, &python, name, extra);
}

/// A service-mode scenario, against a real `blockback serve` on loopback
/// (store `rbd:backups`, the test cluster as its default cluster).
fn service_scenario(name: &str) {
    let Some(conf) = cluster() else { return };
    let Some(python) = python() else { return };
    let extra = format!("[clusters.default]\nconf = \"{}\"\n", conf.display());
    let service = Service::start(&extra, Some("rbd:backups"));
    let catalog = service.catalog().display().to_string();
    let outcome = std::panic::catch_unwind(|| {
        run_scenario(&conf, &python, name, &[&service.url, ADMIN, &catalog])
    });
    if let Err(panic) = outcome {
        eprintln!("blockback serve's log:\n{}", service.log());
        std::panic::resume_unwind(panic);
    }
}

fn run_scenario(conf: &Path, python: &Path, name: &str, extra: &[&str]) {
    let dir = Dir::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cinder_backup_driver.py");
    let out = Command::new(python)
        .arg(script)
        .arg(name)
        .arg(conf)
        .arg(env!("CARGO_BIN_EXE_blockback"))
        .arg(dir.tmp.path())
        .args(extra)
        .env("TMPDIR", dir.tmp.path())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("ok {name}")),
        "scenario {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn full_incrementals_restores_deletes_and_fallback() {
    scenario("lifecycle", &[]);
}

#[test]
fn chains_continue_across_cinders_driver_and_ours() {
    scenario("mixed", &[]);
}

#[test]
fn a_missing_pool_fails_the_backup_with_the_reason_and_leaves_nothing() {
    scenario("errors-cli", &[]);
}

#[test]
fn service_mode_full_incrementals_restores_deletes_and_fallback() {
    service_scenario("lifecycle-service");
}

#[test]
fn service_mode_errors_fail_the_backup_with_the_reason_and_leave_nothing() {
    service_scenario("errors-service");
}

#[test]
fn service_mode_continues_cinders_chain_once_adopted() {
    service_scenario("adopted-service");
}
