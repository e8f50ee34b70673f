//! `blockback nbd` and `backup restore --live` driven by Debian's NBD
//! clients (libnbd-bin: nbdinfo, nbdcopy; qemu-utils: qemu-img, qemu-io),
//! which scripts/test.sh installs.

mod util;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use util::*;

const SIZE: u64 = 48 * MIB;
/// Data at 4-12 MiB and 32-36 MiB; holes elsewhere.
const EXTENTS: [(u64, u64); 2] = [(4 * MIB, 8 * MIB), (32 * MIB, 4 * MIB)];

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is missing: install libnbd-bin and qemu-utils (scripts/test.sh does)"
    );
    Command::new(name)
}

fn run_tool(name: &str, args: &[&str]) -> String {
    let out = tool(name).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running server and the lines it printed.
struct Served {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    fn start(mut cmd: Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Served { child, lines }
    }

    /// The next line containing `what`.
    fn wait_for(&self, what: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("the server never printed {what:?}"));
            if line.contains(what) {
                return line;
            }
        }
    }

    /// The URI of the export the first "serving" line names.
    fn uri(&self) -> String {
        let line = self.wait_for("serving backup");
        line.split_whitespace()
            .find(|w| w.starts_with("nbd"))
            .unwrap()
            .to_string()
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let status = self.child.wait().unwrap();
        while self.lines.try_recv().is_ok() {}
        status
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn socket(dir: &Dir) -> String {
    format!("unix:{}", dir.path("nbd.sock").display())
}

fn backed_up(dir: &Dir, seed: u64) -> (std::path::PathBuf, String) {
    let src = dir.path(&format!("disk{seed}.img"));
    make_image(&src, SIZE, &EXTENTS, seed);
    let id = id_of(&dir.backup(&src));
    (src, id)
}

/// `nbdinfo --map` as (offset, length, type) rows.
fn map(uri: &str) -> Vec<(u64, u64, u32)> {
    run_tool("nbdinfo", &["--map", uri])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

fn qemu_io(uri: &str, command: &str) -> String {
    run_tool("qemu-io", &["-f", "raw", "-c", command, uri])
}

#[test]
fn read_only_export_is_the_backup_bit_exact_with_its_holes() {
    let dir = Dir::new();
    let (src, id) = backed_up(&dir, 1);
    let served = Served::start(dir.command(&["nbd", &id[..8], "--listen", &socket(&dir)]));
    let uri = served.uri();
    assert!(
        uri.contains(&id),
        "the export is named by the full backup id: {uri}"
    );
    let info = run_tool("nbdinfo", &["--json", &uri]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let export = &info["exports"][0];
    assert_eq!(export["export-size"].as_u64(), Some(SIZE));
    assert_eq!(export["is_read_only"].as_bool(), Some(true));
    // The allocation map is the source's: data exactly where it was written.
    let data: Vec<(u64, u64)> = map(&uri)
        .into_iter()
        .filter(|r| r.2 == 0)
        .map(|r| (r.0, r.1))
        .collect();
    assert_eq!(data, EXTENTS.to_vec());
    let copy = dir.path("nbdcopy.img");
    run_tool("nbdcopy", &[&uri, copy.to_str().unwrap()]);
    assert_eq!(sha256(&copy), sha256(&src));
    let converted = dir.path("qemu.img");
    run_tool(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "raw",
            &uri,
            converted.to_str().unwrap(),
        ],
    );
    assert_eq!(sha256(&converted), sha256(&src));
    assert!(
        allocated(&converted) < 16 * MIB,
        "qemu-img skipped the holes"
    );
    let same = run_tool(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            &uri,
            src.to_str().unwrap(),
        ],
    );
    assert!(same.contains("identical"), "{same}");
    // A write to a read-only export fails, and the export goes on.
    let out = tool("qemu-io")
        .args(["-f", "raw", "-c", "write -P 0x11 0 4k", &uri])
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() || said.contains("failed"), "{said}");
    // A wrong export name: a clear failure, the server serves on.
    let wrong = uri.replace(&id, "not-a-backup");
    let out = tool("nbdinfo").arg(&wrong).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-a-backup"));
    assert_eq!(sha256_of_export(&dir, &uri), sha256(&src));
    assert!(served.stop().success());
    assert_eq!(dir.json(&["backup", "show", &id])["status"], "available");
}

fn sha256_of_export(dir: &Dir, uri: &str) -> String {
    let out = dir.path("again.img");
    let _ = std::fs::remove_file(&out);
    run_tool("nbdcopy", &[uri, out.to_str().unwrap()]);
    sha256(&out)
}

#[test]
fn many_exports_at_once_and_a_backup_being_served_is_not_deleted() {
    let dir = Dir::new();
    let (src1, id1) = backed_up(&dir, 1);
    let (src2, id2) = backed_up(&dir, 2);
    let served = Served::start(dir.command(&["nbd", &id1, &id2, "--listen", &socket(&dir)]));
    let first = served.uri();
    let second = served.uri();
    let (u1, u2) = if first.contains(&id1) {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(sha256_of_export(&dir, &u1), sha256(&src1));
    assert_eq!(sha256_of_export(&dir, &u2), sha256(&src2));
    let refused = dir.fails(&["backup", "delete", &id1]);
    assert!(refused.contains(&id1), "{refused}");
    assert!(served.stop().success());
    dir.ok(&["backup", "delete", &id1]);
}

#[test]
fn writable_export_keeps_writes_in_the_overlay_never_in_the_backup() {
    let dir = Dir::new();
    let (src, id) = backed_up(&dir, 3);
    let overlay = dir.path("overlay.img");
    let args = [
        "nbd",
        &id,
        "--listen",
        &socket(&dir),
        "--writable",
        "--overlay",
        overlay.to_str().unwrap(),
    ];
    let served = Served::start(dir.command(&args));
    let uri = served.uri();
    // Into a hole, across a data extent's start, and a partial block.
    qemu_io(&uri, "write -P 0xab 1M 64k");
    qemu_io(&uri, "write -P 0xcd 4092k 8k");
    qemu_io(&uri, "write -z 33M 4k");
    assert!(qemu_io(&uri, "read -P 0xab 1M 64k").contains("read 65536/65536"));
    assert!(qemu_io(&uri, "read -P 0xcd 4092k 8k").contains("read 8192/8192"));
    assert!(qemu_io(&uri, "read -P 0 33M 4k").contains("read 4096/4096"));
    let mut expected = std::fs::read(&src).unwrap();
    expected[MIB as usize..(MIB + 65536) as usize].fill(0xab);
    expected[(4092 * 1024) as usize..(4100 * 1024) as usize].fill(0xcd);
    expected[(33 * MIB) as usize..(33 * MIB + 4096) as usize].fill(0);
    let view = dir.path("view.img");
    run_tool("nbdcopy", &[&uri, view.to_str().unwrap()]);
    assert!(
        std::fs::read(&view).unwrap() == expected,
        "the view is the backup plus the writes"
    );
    let stopped = served.stop();
    assert!(stopped.success());
    // The backup is untouched: it verifies and restores to the original.
    dir.ok(&["verify", &id]);
    let restored = dir.path("restored.img");
    dir.ok(&["backup", "restore", &id, restored.to_str().unwrap()]);
    assert_eq!(sha256(&restored), sha256(&src));
    // The kept overlay is continued, and can become a new backup.
    let mut args2 = args.to_vec();
    args2.push("--save-as-backup");
    let served = Served::start(dir.command(&args2));
    let uri = served.uri();
    assert!(qemu_io(&uri, "read -P 0xab 1M 64k").contains("read 65536/65536"));
    assert!(served.stop().success());
    let list = dir.json(&["backup", "list"]);
    let newest = list.as_array().unwrap().last().unwrap();
    let new_id = id_of(newest);
    assert_ne!(new_id, id);
    let saved = dir.path("saved.img");
    dir.ok(&["backup", "restore", &new_id, saved.to_str().unwrap()]);
    assert!(
        std::fs::read(&saved).unwrap() == expected,
        "the saved backup holds the writes"
    );
}

#[test]
fn bad_listen_addresses_and_unknown_backups_are_refused() {
    let dir = Dir::new();
    let (_, id) = backed_up(&dir, 4);
    let e = dir.fails(&["nbd", &id, "--listen", "tcp:0.0.0.0:10809"]);
    assert!(e.contains("loopback"), "{e}");
    let e = dir.fails(&["nbd", "ffffffff", "--listen", &socket(&dir)]);
    assert!(e.contains("ffffffff"), "{e}");
    let e = dir.fails(&[
        "backup",
        "restore",
        "--live",
        &id,
        dir.path("f.img").to_str().unwrap(),
        "--listen",
        &socket(&dir),
    ]);
    assert!(e.contains("live restore writes into an image"), "{e}");
}

/// Live restore into a local-store image, killed with -9 mid-copy, then
/// resumed: the target ends as the backup plus what the client wrote
/// (and flushed) before the kill.
#[test]
fn killed_live_restore_resumes_to_the_backup_plus_the_writes() {
    let dir = Dir::new();
    let (src, id) = backed_up(&dir, 5);
    let live = |extra: &[&str]| {
        let mut args = vec![
            "backup",
            "restore",
            "--live",
            &id,
            "local:restored",
            "--listen",
        ];
        let sock = socket(&dir);
        let sock: &'static str = Box::leak(sock.into_boxed_str());
        args.push(sock);
        args.extend_from_slice(extra);
        Served::start(dir.command(&args))
    };
    let served = live(&["--copy-rate", "4M"]);
    let uri = served.uri();
    qemu_io(&uri, "write -P 0x5a 40M 128k");
    qemu_io(&uri, "write -P 0x6b 5M 4k");
    // A block not copied yet reads from the backup.
    assert!(qemu_io(&uri, "read -P 0 20M 64k").contains("read 65536/65536"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    unsafe { libc_kill(served.child.id() as i32, 9) };
    let mut served = served;
    served.child.wait().unwrap();
    // The record is recovered by the next command; the target says it is
    // unfinished, and a plain restore onto it is not a resume.
    let shown = dir.json(&["backup", "show", &id]);
    assert_eq!(shown["status"], "available");
    let resumed = live(&["--exit-when-done"]);
    let line = resumed.wait_for("serving backup");
    assert!(line.contains("resuming"), "{line}");
    resumed.wait_for("complete");
    let status = resumed.stop();
    assert!(status.success());
    let out = dir.path("final.img");
    dir.ok(&["export", "local:restored", out.to_str().unwrap()]);
    let mut expected = std::fs::read(&src).unwrap();
    expected[(40 * MIB) as usize..(40 * MIB + 131072) as usize].fill(0x5a);
    expected[(5 * MIB) as usize..(5 * MIB + 4096) as usize].fill(0x6b);
    let raw = dir.path("final.raw");
    raw_image_of(&dir, "local:restored", &raw);
    assert!(
        std::fs::read(&raw).unwrap() == expected,
        "target = backup + writes"
    );
    // Starting it again finds a finished restore: refused, nothing changed.
    let e = dir.fails(&[
        "backup",
        "restore",
        "--live",
        &id,
        "local:restored",
        "--listen",
        &socket(&dir),
    ]);
    assert!(e.contains("finished live restore"), "{e}");
}

/// The raw content of an image address, through the `nbd`-independent
/// stream path: backed up and restored into a file.
fn raw_image_of(dir: &Dir, address: &str, out: &Path) {
    let record = dir.json(&["backup", "create", address, "--full"]);
    dir.ok(&["backup", "restore", &id_of(&record), out.to_str().unwrap()]);
}

#[test]
fn abandoned_live_restore_removes_its_target() {
    let dir = Dir::new();
    let (_, id) = backed_up(&dir, 6);
    let served = Served::start(dir.command(&[
        "backup",
        "restore",
        "--live",
        &id,
        "local:gone",
        "--listen",
        &socket(&dir),
        "--copy-rate",
        "1M",
    ]));
    served.uri();
    let mut served = served;
    unsafe { libc_kill(served.child.id() as i32, 9) };
    served.child.wait().unwrap();
    // Abandoning another backup's target, or a non-live image, is refused.
    let (_, other) = backed_up(&dir, 7);
    let e = dir.fails(&[
        "backup",
        "restore",
        "--live",
        "--abandon",
        &other,
        "local:gone",
    ]);
    assert!(e.contains("not an unfinished live restore"), "{e}");
    dir.ok(&[
        "backup",
        "restore",
        "--live",
        "--abandon",
        &id,
        "local:gone",
    ]);
    let e = dir.fails(&["export", "local:gone", dir.path("x").to_str().unwrap()]);
    assert!(e.contains("not found") || e.contains("gone"), "{e}");
}

/// Live restore of an RBD backup into a new RBD image while a client
/// reads and writes through the export: the final image is the backup
/// plus the client's writes.
#[test]
fn live_restore_into_a_new_rbd_image_under_a_reading_and_writing_client() {
    let Some(conf) = ceph::cluster() else { return };
    let dir = Dir::new();
    let src = dir.path("vol.img");
    make_image(&src, SIZE, &EXTENTS, 8);
    let volume = ceph::unique("nbd-live-src");
    ceph::rbd(
        &conf,
        &[
            "import",
            src.to_str().unwrap(),
            &format!("volumes/{volume}"),
        ],
    );
    let record = ceph::json(
        &dir,
        &conf,
        &[
            "--store",
            "rbd:backups",
            "backup",
            "create",
            &format!("rbd:volumes/{volume}"),
        ],
    );
    let id = id_of(&record);
    let target = ceph::unique("nbd-live-dst");
    let args = ceph::with_conf(
        &dir,
        &conf,
        &[
            "--store",
            "rbd:backups",
            "backup",
            "restore",
            "--live",
            &id,
            &format!("rbd:volumes/{target}"),
            "--listen",
            &socket(&dir),
            "--copy-rate",
            "8M",
        ],
    );
    let served = Served::start(dir.command(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let uri = served.uri();
    // Reads while copying are the backup's, writes land in the target.
    let early = dir.path("early.img");
    run_tool("nbdcopy", &[&uri, early.to_str().unwrap()]);
    assert_eq!(sha256(&early), sha256(&src));
    qemu_io(&uri, "write -P 0x77 34M 100k");
    qemu_io(&uri, "write -P 0x88 20M 4k");
    assert!(qemu_io(&uri, "read -P 0x77 34M 100k").contains("read 102400/102400"));
    served.wait_for("complete");
    // After the switch the export reads the target.
    assert!(qemu_io(&uri, "read -P 0x88 20M 4k").contains("read 4096/4096"));
    assert!(served.stop().success());
    let mut expected = std::fs::read(&src).unwrap();
    expected[(34 * MIB) as usize..(34 * MIB) as usize + 102400].fill(0x77);
    expected[(20 * MIB) as usize..(20 * MIB + 4096) as usize].fill(0x88);
    let out = dir.path("target.img");
    ceph::rbd(
        &conf,
        &[
            "export",
            &format!("volumes/{target}"),
            out.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(&out).unwrap() == expected,
        "target = backup + writes"
    );
    assert_eq!(
        ceph::json(
            &dir,
            &conf,
            &["--store", "rbd:backups", "backup", "show", &id]
        )["status"],
        "available"
    );
    let meta = ceph::rbd(
        &conf,
        &[
            "image-meta",
            "get",
            &format!("volumes/{target}"),
            "blockback.live-restore",
        ],
    );
    assert!(meta.contains("\"complete\":true"), "{meta}");
    ceph::rbd(&conf, &["rm", &format!("volumes/{target}")]);
    ceph::ok(
        &dir,
        &conf,
        &["--store", "rbd:backups", "backup", "delete", &id],
    );
    ceph::rbd(&conf, &["rm", &format!("volumes/{volume}")]);
}

#[test]
fn the_service_opens_lists_and_closes_exports_and_closes_them_at_shutdown() {
    use util::service::{Service, ADMIN};
    let sock = std::env::temp_dir().join(format!("bb-nbd-{}.sock", std::process::id()));
    let extra = format!("[nbd]\nlisten = \"unix:{}\"\n", sock.display());
    let mut s = Service::start(&extra, None);
    let (src, id) = backed_up(&s.dir, 9);
    let body = format!("{{\"backup_id\": \"{id}\"}}");
    let (status, view) = s.call("POST", "/api/v1/exports", ADMIN, Some(&body));
    assert_eq!(status, 201, "{view}");
    let uri = view["uri"].as_str().unwrap().to_string();
    assert_eq!(sha256_of_export(&s.dir, &uri), sha256(&src));
    let (status, again) = s.call("POST", "/api/v1/exports", ADMIN, Some(&body));
    assert_eq!(status, 409, "{again}");
    assert_eq!(s.get("/api/v1/exports")[0]["backup_id"], id.as_str());
    // Read-only: nothing to save; closing it ends the clients' access.
    let path = format!("/api/v1/exports/{id}");
    let (status, _) = s.call(
        "DELETE",
        &format!("{path}?save_as_backup=true"),
        ADMIN,
        None,
    );
    assert_eq!(status, 400);
    let (status, closed) = s.call("DELETE", &path, ADMIN, None);
    assert_eq!(status, 200, "{closed}");
    assert!(!tool("nbdinfo").arg(&uri).status().unwrap().success());
    assert_eq!(s.get("/api/v1/exports"), serde_json::json!([]));
    // Writable, saved as a new backup holding the write.
    let body = format!("{{\"backup_id\": \"{id}\", \"writable\": true}}");
    let (status, view) = s.call("POST", "/api/v1/exports", ADMIN, Some(&body));
    assert_eq!(status, 201, "{view}");
    let uri = view["uri"].as_str().unwrap().to_string();
    qemu_io(&uri, "write -P 0x5a 1M 64k");
    let (status, closed) = s.call(
        "DELETE",
        &format!("{path}?save_as_backup=true"),
        ADMIN,
        None,
    );
    assert_eq!(status, 200, "{closed}");
    let saved = closed["saved_backup_id"].as_str().unwrap().to_string();
    let mut expected = std::fs::read(&src).unwrap();
    expected[MIB as usize..(MIB + 65536) as usize].fill(0x5a);
    let out = s.dir.path("saved.img");
    s.dir
        .ok(&["backup", "restore", &saved, out.to_str().unwrap()]);
    assert!(
        std::fs::read(&out).unwrap() == expected,
        "saved = backup + write"
    );
    // Open at shutdown: closed, the backup released (it can be deleted).
    let body = format!("{{\"backup_id\": \"{id}\", \"writable\": true}}");
    assert_eq!(s.call("POST", "/api/v1/exports", ADMIN, Some(&body)).0, 201);
    assert!(s.terminate(std::time::Duration::from_secs(60)).success());
    assert!(s.log().contains("export closed at shutdown"), "{}", s.log());
    assert_eq!(s.dir.json(&["backup", "show", &id])["status"], "available");
    s.dir.ok(&["backup", "delete", &saved]);
    s.dir.ok(&["backup", "delete", &id]);
}
