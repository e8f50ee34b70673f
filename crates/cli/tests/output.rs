//! What people and scripts read: result lines, --quiet, --json, dates,
//! help texts, log lines, ambiguous ids.

mod util;

use std::collections::HashMap;
use util::{id_of, make_image, Dir, MIB};

fn small_image(dir: &Dir, name: &str, seed: u64) -> std::path::PathBuf {
    let path = dir.path(name);
    make_image(&path, MIB, &[(0, 64 * 1024)], seed);
    path
}

/// `2025-03-01T14:05:09+05:30`-shaped, with the given offset.
fn is_local_iso(text: &str, offset: &str) -> bool {
    let b = text.as_bytes();
    text.len() == 25
        && text.ends_with(offset)
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && text[..4].bytes().all(|c| c.is_ascii_digit())
}

#[test]
fn an_ambiguous_id_prefix_is_called_ambiguous_and_names_the_candidates() {
    let dir = Dir::new();
    let img = small_image(&dir, "a.img", 1);
    // 17 ids cannot all differ in their first hex digit.
    let mut by_first: HashMap<char, Vec<String>> = HashMap::new();
    for _ in 0..17 {
        let id = id_of(&dir.backup(&img));
        let first = id.chars().next().unwrap();
        by_first.entry(first).or_default().push(id);
        if by_first[&first].len() > 1 {
            break;
        }
    }
    let (prefix, ids) = by_first.iter().find(|(_, ids)| ids.len() > 1).unwrap();
    let err = dir.fails(&["backup", "show", &prefix.to_string()]);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(ids.iter().all(|id| err.contains(id)), "{err}");
    let missing = dir.fails(&["backup", "show", "zzzz"]);
    assert!(missing.contains("not found"), "{missing}");
}

#[test]
fn quiet_prints_no_result_lines_but_errors_and_json() {
    let dir = Dir::new();
    let img = small_image(&dir, "q.img", 2);
    let img = img.to_str().unwrap();
    for args in [
        vec!["-q", "backup", "create", img],
        vec!["-q", "backup", "list"],
        vec!["--quiet", "store", "stats"],
        vec!["-q", "gc"],
        vec!["-q", "verify"],
    ] {
        assert_eq!(dir.ok(&args), "", "blockback {args:?} printed a result");
    }
    let list = dir.json(&["-q", "backup", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let err = dir.fails(&["-q", "backup", "show", "zzzz"]);
    assert!(err.contains("not found"));
}

#[test]
fn gc_and_store_stats_print_text_unless_json_is_asked_for() {
    let dir = Dir::new();
    let img = small_image(&dir, "g.img", 3);
    dir.backup(&img);
    let stats = dir.ok(&["store", "stats"]);
    assert!(!stats.trim_start().starts_with('{'), "{stats}");
    assert!(
        stats.contains("deduplication") && stats.contains("snapshots"),
        "{stats}"
    );
    let gc = dir.ok(&["gc"]);
    assert!(!gc.trim_start().starts_with('{'), "{gc}");
    assert!(gc.starts_with("gc freed"), "{gc}");
    assert!(dir.json(&["gc"])["bytes_freed"].is_u64());
    assert!(dir.json(&["store", "stats"])["pack_bytes"].is_u64());
}

#[test]
fn backup_list_has_a_header_and_local_dates() {
    let dir = Dir::new();
    let img = small_image(&dir, "l.img", 4);
    let id = id_of(&dir.backup(&img));
    let out = dir
        .command(&["backup", "list"])
        .env("TZ", "Asia/Kolkata")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "CREATED", "KIND", "STATUS", "SIZE", "SOURCE"],
        "{text}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], id);
    assert!(is_local_iso(row[1], "+05:30"), "{text}");
    assert_eq!(&row[2..4], ["full", "available"]);
}

#[test]
fn backup_show_prints_local_dates_and_json_keeps_numbers() {
    let dir = Dir::new();
    let img = small_image(&dir, "s.img", 5);
    let id = id_of(&dir.backup(&img));
    let out = dir
        .command(&["backup", "show", &id])
        .env("TZ", "Asia/Kolkata")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_string()
    };
    assert!(is_local_iso(&value("created"), "+05:30"), "{text}");
    assert!(is_local_iso(&value("completed"), "+05:30"), "{text}");
    assert_eq!(value("protected"), "no");
    let json = dir.json(&["backup", "show", &id]);
    assert!(json["created_at"].as_f64().unwrap() > 1.6e9);
    assert_eq!(json["protected"], false);
}

#[test]
fn log_lines_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = Dir::new();
    let img = small_image(&dir, "c.img", 6);
    let out = dir
        .command(&["backup", "create", img.to_str().unwrap()])
        .env("BLOCKBACK_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBUG") || stderr.contains("INFO"),
        "no log lines: {stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "colour codes in: {stderr}");
}

/// Every positional argument of every command has a help text.
#[test]
fn every_argument_has_a_help_text() {
    let dir = Dir::new();
    let commands: &[&[&str]] = &[
        &["backup", "create"],
        &["backup", "restore"],
        &["backup", "show"],
        &["backup", "delete"],
        &["backup", "protect"],
        &["backup", "unprotect"],
        &["verify"],
        &["export-diff"],
        &["import-diff"],
        &["export"],
        &["import"],
        &["merge-diff"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let help = dir.ok(&args);
        let section = help
            .split("Arguments:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{command:?}: no arguments in {help}"));
        for line in section.lines().take_while(|l| !l.trim().is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(
                words.len() > 1,
                "{command:?}: argument {line:?} has no help text"
            );
        }
    }
}

#[test]
fn readme_says_how_to_get_blockback_on_the_path() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    assert!(
        readme.contains("cargo install --path crates/cli"),
        "no install command"
    );
    assert!(
        readme.contains("target/release/blockback"),
        "no word on the release binary"
    );
    // And that path installs the binary the README's examples run.
    assert!(env!("CARGO_BIN_EXE_blockback").ends_with("/blockback"));
}

/// `blockback backup list | head -1`: the reader may go before we print.
/// That ends the command quietly, as for other tools -- it panicked
/// ("failed printing to stdout: Broken pipe").
#[test]
fn a_closed_stdout_is_no_panic() {
    let dir = Dir::new();
    let img = small_image(&dir, "p.img", 5);
    dir.backup(&img);
    for args in [&["backup", "list"][..], &["--json", "backup", "list"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = dir.command(args).stdout(writer).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {stderr}");
    }
}
