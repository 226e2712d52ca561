//! `make demo`, as a user runs it: the story runs to its end (each of its steps checks what it
//! shows), and every message it shows matches its golden copy in tests/golden/demo, so that a change
//! to what a subscriber reads is a deliberate one. What differs between runs (times, ports, the
//! milliseconds a check took) is replaced by placeholders first.
//!
//! After changing a message on purpose: `UPDATE_GOLDEN=1 cargo test -p pipewarden-tests --test demo`,
//! then review the diff of tests/golden/demo.

use std::path::Path;
use std::process::Command;

use pipewarden_devkit::repo_root;
use regex::Regex;

/// The message with what changes from run to run replaced.
fn normalized(text: &str) -> String {
    let rules = [
        (r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(Z| UTC|\+0000)?", "<time>"),
        (r"\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}", "<time>"),
        (r"\d{2}:\d{2}:\d{2} UTC", "<time>"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        (r"\d+ ms\b", "<n> ms"),
        (r"\b\d+(\.\d+)? s\b", "<n> s"),
    ];
    rules
        .iter()
        .fold(text.to_string(), |text, (pattern, by)| Regex::new(pattern).unwrap().replace_all(&text, *by).into_owned())
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn make_demo_tells_the_story_and_its_messages_match_their_golden_copies() {
    let messages = std::env::temp_dir().join(format!("pipewarden-demo-messages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&messages);
    std::fs::create_dir_all(&messages).unwrap();
    let out = Command::new("make")
        .args(["--no-print-directory", "demo"])
        .current_dir(repo_root())
        .env("PIPEWARDEN_DEMO_MESSAGES", &messages)
        .output()
        .expect("running make demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "make demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("The story holds:"), "{stdout}");
    assert!(!stdout.contains("THE DEMO FAILED"), "{stdout}");

    let golden = repo_root().join("tests/golden/demo");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    if update {
        let _ = std::fs::remove_dir_all(&golden);
        std::fs::create_dir_all(&golden).unwrap();
    }
    let shown = files(&messages);
    assert!(shown.len() >= 4, "the demo shows the alarm, FAILED, OK and SUCCEEDED messages: {shown:?}");
    let mut differ = Vec::new();
    for name in &shown {
        let got = normalized(&std::fs::read_to_string(messages.join(name)).unwrap());
        if update {
            std::fs::write(golden.join(name), &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(golden.join(name)).unwrap_or_default();
        if got != want {
            differ.push(format!("{name}:\n--- golden\n{want}\n--- shown\n{got}"));
        }
    }
    let _ = std::fs::remove_dir_all(&messages);
    assert_eq!(files(&golden), shown, "a golden copy for each message shown, and no other");
    assert!(
        differ.is_empty(),
        "messages differ from their golden copies (UPDATE_GOLDEN=1 to accept a deliberate change):\n{}",
        differ.join("\n")
    );
}
