//! The native API of `blockback serve` (file volumes, local store): every
//! endpoint, auth failures, and bad input that must give a clear 4xx and
//! change nothing.

mod util;

use serde_json::{json, Value};
use std::time::Duration;
use util::service::{Service, ADMIN, READER};
use util::{make_image, sha256, MIB};

/// What bad requests must leave unchanged.
fn snapshot(s: &Service) -> (Value, usize, usize) {
    let volumes = s.get("/api/v1/volumes");
    let jobs = s.get("/api/v1/jobs").as_array().map_or(0, Vec::len);
    let backups = s.get("/api/v1/backups")["items"]
        .as_array()
        .map_or(0, Vec::len);
    (volumes, jobs, backups)
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Asserts `status` and that the error message contains `words`.
fn refused(
    s: &Service,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
    status: u16,
    words: &str,
) {
    let (got, answer) = s.call(method, path, token, body);
    assert_eq!(got, status, "{method} {path}: {answer}");
    assert_eq!(answer["error"]["code"], status, "{answer}");
    let text = message(&answer);
    assert!(
        text.to_lowercase().contains(&words.to_lowercase()),
        "{method} {path}: {text:?} lacks {words:?}"
    );
}

#[test]
fn openapi_lists_every_route_and_needs_no_token() {
    let s = Service::start("", None);
    let (status, doc) = s.call("GET", "/api/v1/openapi.json", "", None);
    assert_eq!(status, 200);
    for path in [
        "/api/v1/volumes",
        "/api/v1/volumes/{id}",
        "/api/v1/backups",
        "/api/v1/backups/{id}",
        "/api/v1/backups/{id}/restore",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/cancel",
        "/api/v1/stores",
        "/api/v1/health/live",
        "/api/v1/health/ready",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["JobView"].is_object());
}

#[test]
fn auth_failures_are_401_and_403_with_a_clear_body() {
    let s = Service::start("", None);
    refused(
        &s,
        "GET",
        "/api/v1/volumes",
        "",
        None,
        401,
        "missing bearer token",
    );
    refused(
        &s,
        "GET",
        "/api/v1/volumes",
        "not-a-token",
        None,
        401,
        "not valid",
    );
    let body = r#"{"name":"x","source":"/nonexistent"}"#;
    refused(
        &s,
        "POST",
        "/api/v1/volumes",
        READER,
        Some(body),
        403,
        "read-only",
    );
    assert_eq!(s.call("GET", "/api/v1/volumes", READER, None).0, 200);
    assert_eq!(s.call("GET", "/metrics", "", None).0, 401);
    assert_eq!(s.call("GET", "/metrics", READER, None).0, 200);
    assert_eq!(s.call("GET", "/api/v1/health/ready", "", None).0, 200);
    assert!(
        !s.log().contains(ADMIN) && !s.log().contains(READER),
        "a token was logged"
    );
}

#[test]
fn volumes_backups_restores_jobs_stores_end_to_end() {
    let s = Service::start("[jobs]\nmax_running = 2\n", None);
    let src = s.dir.path("disk.img");
    make_image(&src, 32 * MIB, &[(0, 4 * MIB), (20 * MIB, MIB)], 7);
    let vid = s.register("disk", &src.display().to_string());
    let before = snapshot(&s);
    bad_volume_requests(&s, &src);
    bad_backup_and_job_requests(&s, &vid);
    assert_eq!(snapshot(&s), before, "a refused request changed something");

    let first = s.backup("disk", "full");
    util::write_at(&src, 8 * MIB, &[0xab; 65536]);
    let second = s.backup(&vid, "incremental");
    let b2 = second["backup_id"].as_str().unwrap().to_string();
    let shown = s.get(&format!("/api/v1/backups/{b2}"));
    assert_eq!(
        (shown["kind"].as_str(), shown["status"].as_str()),
        (Some("incremental"), Some("available"))
    );
    assert_eq!(shown["parent"], first["backup_id"]);

    let page = s.get("/api/v1/backups?limit=1");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = page["next_marker"].as_str().expect("a next page");
    let rest = s.get(&format!("/api/v1/backups?limit=1&marker={next}"));
    assert_eq!(rest["items"][0]["id"], b2.as_str());
    assert!(rest["next_marker"].is_null());
    assert_eq!(
        s.get(&format!("/api/v1/backups?volume_id={vid}&status=available"))["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let target = s.restores().join("restored.img");
    let (status, job) = s.post(
        &format!("/api/v1/backups/{b2}/restore"),
        &json!({"path": target.display().to_string()}),
    );
    assert_eq!(status, 202, "{job}");
    let done = s.wait_job(job["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        sha256(&target),
        sha256(&src),
        "the restore is not bit-exact"
    );

    let stores = s.get("/api/v1/stores");
    assert!(stores[0]["used_bytes"].as_u64().unwrap() > 0, "{stores}");
    assert_eq!(stores[0]["backups"]["available"], 2);
    let succeeded = s.get("/api/v1/jobs?state=succeeded");
    assert_eq!(succeeded.as_array().unwrap().len(), 3);
    let (status, answer) = s.post(
        &format!("/api/v1/jobs/{}/cancel", done["id"].as_str().unwrap()),
        &json!({}),
    );
    assert_eq!(status, 409, "{answer}");

    let metrics = ureq::get(&format!("{}/metrics", s.url))
        .set("Authorization", &format!("Bearer {READER}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for needle in [
        "blockback_jobs{",
        "blockback_job_duration_seconds_bucket",
        "blockback_read_bytes_total",
        &format!("blockback_volume_last_backup_timestamp_seconds{{volume_id=\"{vid}\""),
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }

    let (status, job) = s.call("DELETE", &format!("/api/v1/backups/{b2}"), ADMIN, None);
    assert_eq!(status, 202, "{job}");
    assert_eq!(
        s.wait_job(job["id"].as_str().unwrap(), Duration::from_secs(60))["state"],
        "succeeded"
    );
    assert_eq!(
        s.call("GET", &format!("/api/v1/backups/{b2}"), ADMIN, None)
            .0,
        404
    );
    let (status, _) = s.call("DELETE", &format!("/api/v1/volumes/{vid}"), ADMIN, None);
    assert_eq!(status, 204);
    assert_eq!(
        s.call("GET", &format!("/api/v1/volumes/{vid}"), ADMIN, None)
            .0,
        404
    );
    assert_eq!(
        s.get("/api/v1/backups")["items"].as_array().unwrap().len(),
        1,
        "backups outlive their registration"
    );
}

fn bad_volume_requests(s: &Service, src: &std::path::Path) {
    let post = |body: &str, status: u16, words: &str| {
        refused(
            s,
            "POST",
            "/api/v1/volumes",
            ADMIN,
            Some(body),
            status,
            words,
        )
    };
    post("{not json", 400, "request body");
    post(r#"{"name":"a"}"#, 422, "source");
    post(
        r#"{"name":"a","source":"/x","colour":"red"}"#,
        422,
        "colour",
    );
    post(
        r#"{"name":"a","source":"/no/such/disk.img"}"#,
        400,
        "/no/such/disk.img",
    );
    post(r#"{"name":"","source":"/x"}"#, 400, "empty");
    post(
        &json!({"name": "again", "source": src.display().to_string()}).to_string(),
        409,
        "already registered",
    );
    post(
        &json!({"name": "a", "source": "rbd:p/i", "cluster": "nowhere"}).to_string(),
        400,
        "nowhere",
    );
    let huge = json!({"name": "x".repeat(100_000), "source": "/x"}).to_string();
    // The service answers 413 once the limit is read and may close the
    // connection before the client sent the rest: a reset is a refusal too.
    match s.try_call("POST", "/api/v1/volumes", ADMIN, Some(&huge)) {
        Ok((status, _)) => assert_eq!(status, 413, "an oversized body must be refused"),
        Err(e) => assert!(
            e.contains("reset") || e.contains("roken pipe"),
            "an oversized body: {e}"
        ),
    }
    refused(
        s,
        "GET",
        "/api/v1/volumes/4b1d0c4e-0000-4000-8000-000000000000",
        ADMIN,
        None,
        404,
        "not registered",
    );
    refused(s, "GET", "/api/v1/volumes/not-a-uuid", ADMIN, None, 404, "");
    refused(
        s,
        "DELETE",
        "/api/v1/volumes/4b1d0c4e-0000-4000-8000-000000000000",
        ADMIN,
        None,
        404,
        "not registered",
    );
}

fn bad_backup_and_job_requests(s: &Service, vid: &str) {
    let post = |path: &str, body: &str, status: u16, words: &str| {
        refused(s, "POST", path, ADMIN, Some(body), status, words)
    };
    post(
        "/api/v1/backups",
        r#"{"volume":"nope"}"#,
        404,
        "no registered volume",
    );
    post(
        "/api/v1/backups",
        &json!({"volume": vid, "mode": "sideways"}).to_string(),
        422,
        "mode",
    );
    post(
        "/api/v1/backups",
        &json!({"volume": vid, "mode": "incremental"}).to_string(),
        400,
        "No backups available",
    );
    post(
        "/api/v1/backups",
        &json!({"volume": vid, "metadata": {"k": "x".repeat(300)}}).to_string(),
        400,
        "at most 255",
    );
    let get =
        |path: &str, status: u16, words: &str| refused(s, "GET", path, ADMIN, None, status, words);
    get("/api/v1/backups?limit=0", 400, "limit 0");
    get("/api/v1/backups?limit=5000", 400, "limit 5000");
    get("/api/v1/backups?status=bogus", 400, "bogus");
    get(
        "/api/v1/backups?marker=4b1d0c4e-0000-4000-8000-000000000000",
        400,
        "marker",
    );
    get("/api/v1/backups?colour=red", 400, "colour");
    get(
        "/api/v1/backups/4b1d0c4e-0000-4000-8000-000000000000",
        404,
        "not found",
    );
    get("/api/v1/jobs?state=bogus", 400, "bogus");
    get(
        "/api/v1/jobs/4b1d0c4e-0000-4000-8000-000000000000",
        404,
        "not found",
    );
    post(
        "/api/v1/jobs/4b1d0c4e-0000-4000-8000-000000000000/cancel",
        "{}",
        404,
        "not found",
    );
    let unknown = "/api/v1/backups/4b1d0c4e-0000-4000-8000-000000000000/restore";
    post(unknown, r#"{"path":"/tmp/x"}"#, 404, "not found");
    refused(
        s,
        "DELETE",
        "/api/v1/backups/4b1d0c4e-0000-4000-8000-000000000000",
        ADMIN,
        None,
        404,
        "not found",
    );
}

#[test]
fn restore_targets_are_checked_before_queueing() {
    let s = Service::start("", None);
    let src = s.dir.path("disk.img");
    make_image(&src, 8 * MIB, &[(0, MIB)], 3);
    s.register("disk", &src.display().to_string());
    let b = s.backup("disk", "auto")["backup_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/backups/{b}/restore");
    let post = |body: Value, words: &str| {
        refused(
            &s,
            "POST",
            &path,
            ADMIN,
            Some(&body.to_string()),
            400,
            words,
        )
    };
    post(json!({"path": "/etc/passwd"}), "restore directory");
    post(
        json!({"path": format!("{}/../escape.img", s.restores().display())}),
        "restore directory",
    );
    post(json!({}), "exactly one");
    post(json!({"path": "/x", "new_volume_name": "y"}), "exactly one");
    refused(
        &s,
        "POST",
        &path,
        ADMIN,
        Some(r#"{"volume_id":"4b1d0c4e-0000-4000-8000-000000000000"}"#),
        404,
        "not registered",
    );
    assert!(!s.restores().join("escape.img").exists());
    assert_eq!(
        s.get("/api/v1/jobs").as_array().unwrap().len(),
        1,
        "only the backup's job"
    );
}

#[test]
fn client_chosen_volume_and_backup_ids_are_kept_and_checked() {
    let s = Service::start("", None);
    let src = s.dir.path("disk.img");
    let other = s.dir.path("other.img");
    make_image(&src, 8 * MIB, &[(0, MIB)], 4);
    make_image(&other, 8 * MIB, &[(0, MIB)], 5);
    let vid = "0b7e6a52-3c1d-4f0e-9a55-6d2f1c7b8e01";
    let bid = "5d2c9e1a-7b3f-4c8d-8e6a-1f0b9d4c2a77";
    let (status, v) = s.post(
        "/api/v1/volumes",
        &json!({"id": vid, "name": "disk", "source": src.display().to_string()}),
    );
    assert_eq!((status, v["id"].as_str()), (201, Some(vid)), "{v}");
    let before = snapshot(&s);
    let post = |path: &str, body: Value, status: u16, words: &str| {
        refused(
            &s,
            "POST",
            path,
            ADMIN,
            Some(&body.to_string()),
            status,
            words,
        )
    };
    let volume = |id: &str| json!({"id": id, "name": "o", "source": other.display().to_string()});
    post("/api/v1/volumes", volume(vid), 409, "already has volume");
    post("/api/v1/volumes", volume("not-a-uuid"), 400, "not a UUID");
    let backup = |id: &str, meta: &str| json!({"volume": vid, "id": id, "metadata_object": meta});
    let meta = r#"{"version": 2, "volume-metadata": {"k": "v"}}"#;
    post("/api/v1/backups", backup("42", meta), 400, "not a UUID");
    post(
        "/api/v1/backups",
        backup(bid, "{torn"),
        400,
        "metadata_object",
    );
    assert_eq!(snapshot(&s), before, "a refused request changed something");

    let (status, job) = s.post("/api/v1/backups", &backup(bid, meta));
    assert_eq!(
        (status, job["backup_id"].as_str()),
        (202, Some(bid)),
        "{job}"
    );
    let done = s.wait_job(job["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(done["state"], "succeeded", "{done}\n{}", s.log());
    let shown = s.get(&format!("/api/v1/backups/{bid}"));
    assert_eq!(
        (shown["volume_id"].as_str(), shown["status"].as_str()),
        (Some(vid), Some("available")),
        "{shown}"
    );
    post("/api/v1/backups", backup(bid, meta), 409, "already used");
    assert_eq!(
        s.get("/api/v1/backups")["items"].as_array().unwrap().len(),
        1,
        "the refused duplicate made a backup"
    );
}

#[test]
fn sigterm_stops_the_service_cleanly() {
    let mut s = Service::start("", None);
    let status = s.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit {status}: {}", s.log());
    assert!(s.log().contains("stopped"), "{}", s.log());
}

/// The CLI as a client (`--server`, token from BLOCKBACK_TOKEN): the same
/// output and `--json` as locally.
#[test]
fn cli_with_server_lists_creates_restores_and_shows_jobs() {
    let s = Service::start("", None);
    let src = s.dir.path("disk.img");
    make_image(&src, 16 * MIB, &[(0, 2 * MIB)], 5);
    let vid = s.register("disk", &src.display().to_string());
    let cli = |args: &[&str], token: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_blockback"))
            .arg("--server")
            .arg(&s.url)
            .args(args)
            .env("BLOCKBACK_TOKEN", token)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(&["backup", "create", "disk"], ADMIN);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("backup ") && out.contains("(full) of") && out.contains("read 2.00 MiB"),
        "{out}"
    );
    let (code, out, err) = cli(&["--json", "backup", "create", "disk"], ADMIN);
    assert_eq!(code, Some(0), "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (created["kind"].as_str(), created["job"]["state"].as_str()),
        (Some("incremental"), Some("succeeded"))
    );
    let (_, listed, _) = cli(&["backup", "list"], READER);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        listed.lines().next().unwrap().starts_with("ID") && listed.contains("incremental"),
        "{listed}"
    );
    let (_, json_list, _) = cli(&["--json", "backup", "list"], READER);
    assert_eq!(
        serde_json::from_str::<Value>(&json_list)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let target = s.restores().join("r.img");
    let b = created["id"].as_str().unwrap();
    let (code, out, err) = cli(
        &["backup", "restore", b, &target.display().to_string()],
        ADMIN,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("restored backup"), "{out}");
    assert_eq!(sha256(&target), sha256(&src));
    let (code, out, _) = cli(&["job", "list"], READER);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 4, "a header and 3 jobs: {out}");
    let (code, _, err) = cli(&["backup", "create", "disk"], READER);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("read-only") && err.contains("HTTP 403"),
        "{err}"
    );
    let (code, _, err) = cli(&["backup", "create", "disk"], "");
    assert!(code == Some(1) && err.contains("BLOCKBACK_TOKEN"), "{err}");
    let (code, _, err) = cli(&["gc"], ADMIN);
    assert!(
        code == Some(1) && err.contains("not available with --server"),
        "{err}"
    );
    let (code, out, err) = cli(&["volume", "list"], READER);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&vid) && out.contains("disk"), "{out}");
    let other = s.dir.path("other.img");
    make_image(&other, 4 * MIB, &[(0, MIB)], 9);
    let (code, out, err) = cli(
        &[
            "--json",
            "volume",
            "add",
            "other",
            &other.display().to_string(),
        ],
        ADMIN,
    );
    assert_eq!(code, Some(0), "{err}");
    let added: Value = serde_json::from_str(&out).unwrap();
    let (code, out, _) = cli(&["volume", "show", "other"], READER);
    assert!(
        code == Some(0) && out.contains(added["id"].as_str().unwrap()),
        "{out}"
    );
    let (code, _, err) = cli(&["volume", "add", "x", "/no/such/disk.img"], ADMIN);
    assert!(
        code == Some(1) && err.contains("/no/such/disk.img"),
        "{err}"
    );
    let (code, out, err) = cli(&["volume", "remove", "other"], ADMIN);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("unregistered"), "{out}");
    let (code, _, err) = cli(&["volume", "show", "other"], READER);
    assert!(
        code == Some(1) && err.contains("no registered volume"),
        "{err}"
    );
    // The same jobs, read from the catalog the service shares, without --server.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blockback"))
        .args(["--catalog"])
        .arg(s.catalog())
        .args(["--store"])
        .arg(s.dir.store())
        .args(["job", "list", "--state", "succeeded"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        4,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Readiness names each dependency: an unreachable cluster makes it 503
/// while liveness stays 200.
#[test]
fn readiness_reports_an_unreachable_cluster() {
    let s = Service::start(
        "[clusters.broken]\nconf = \"/nonexistent/blockback-test/ceph.conf\"\n",
        None,
    );
    assert_eq!(s.call("GET", "/api/v1/health/live", "", None).0, 200);
    let (status, body) = s.call("GET", "/api/v1/health/ready", "", None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["checks"]["catalog"], "ok", "{body}");
    let broken = body["checks"]["cluster broken"].as_str().unwrap_or("ok");
    assert_ne!(broken, "ok", "{body}");
}

/// `[logging] format = "json"`: every line is a JSON object, and the lines
/// of a request carry the id the response gave the client.
#[test]
fn json_logs_carry_the_request_id() {
    let s = Service::start("[logging]\nformat = \"json\"\n", None);
    let response = ureq::get(&format!("{}/api/v1/volumes", s.url))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap();
    let id = response
        .header("x-openstack-request-id")
        .expect("a request id header")
        .to_string();
    assert!(id.starts_with("req-"), "{id}");
    // The response line is written as the response leaves: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let log = s.log();
        let lines: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if lines.iter().any(|l| l.to_string().contains(&id)) {
            break lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line with {id}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"] == id.as_str())
        .collect();
    assert!(!of_request.is_empty(), "no line with span.request_id {id}");
    assert!(of_request
        .iter()
        .all(|l| l["span"]["path"] == "/api/v1/volumes"));
}

/// Runs the CLI on the service's catalog and store; whether it succeeded.
fn cli_succeeds(s: &Service, args: &[&str]) -> bool {
    let store = s.dir.store().display().to_string();
    let out = s.cli(&store, args).output().unwrap();
    if !out.status.success() {
        eprintln!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

/// List and show answers are kept while the catalog is unchanged; a change
/// by another process on the same catalog (the CLI) shows at once.
#[test]
fn answers_follow_changes_made_by_another_process() {
    let s = Service::start("", None);
    let src = s.dir.path("disk.img");
    make_image(&src, 8 * MIB, &[(0, MIB)], 3);
    s.register("disk", &src.display().to_string());
    let id = s.backup("disk", "full")["backup_id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = format!("/api/v1/backups/{id}");
    let listed = |s: &Service| s.get("/api/v1/backups")["items"][0]["protected"].clone();
    for _ in 0..3 {
        assert_eq!(s.get(&show)["protected"], false);
        assert_eq!(listed(&s), false);
    }
    assert!(cli_succeeds(&s, &["backup", "protect", &id]));
    assert_eq!(s.get(&show)["protected"], true, "show kept a stale answer");
    assert_eq!(listed(&s), true, "list kept a stale answer");
    assert!(
        !cli_succeeds(&s, &["backup", "delete", &id]),
        "a protected backup was deleted"
    );
    assert!(cli_succeeds(&s, &["backup", "unprotect", &id]));
    assert!(cli_succeeds(&s, &["backup", "delete", &id]));
    assert_eq!(s.call("GET", &show, ADMIN, None).0, 404);
    assert!(s.get("/api/v1/backups")["items"]
        .as_array()
        .unwrap()
        .is_empty());
}
