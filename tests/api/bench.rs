//! The load generator cannot rot: it runs for a moment against a test server, every scenario,
//! and must report traffic and no errors. (A smoke test, not a benchmark: nothing is timed.)

use std::process::Command;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_runs_every_scenario_against_a_real_server() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let (url, json_arg) = (app.url(), json.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_arogya-auth-bench"))
            .args([
                "--addr",
                &url,
                "--duration",
                "0.3",
                "--concurrency",
                "4",
                "--connections",
                "2",
            ])
            .args(["--sessions", "10", "--backend", "test", "--json"])
            .arg(&json_arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["backend"], "test");
    for s in ["baseline", "validate", "signin", "refresh"] {
        let r = &doc["scenarios"][s];
        assert!(r["rps"].as_f64().unwrap() > 0.0, "{s}: {r}");
        assert_eq!(r["errors"], 0, "{s}: {r}");
        for k in ["p50_ms", "p99_ms", "p999_ms", "ratio_to_baseline"] {
            assert!(r[k].as_f64().is_some(), "{s}.{k} missing: {r}");
        }
        assert!(stdout.contains(&format!("| {s} |")), "{stdout}");
    }
    assert_eq!(doc["scenarios"]["baseline"]["ratio_to_baseline"], 1.0);
}

#[test]
fn a_nonsense_duration_is_refused_not_a_panic() {
    for bad in ["-1", "0", "NaN", "inf"] {
        let out = Command::new(env!("CARGO_BIN_EXE_arogya-auth-bench"))
            .args(["--addr", "http://127.0.0.1:9", &format!("--duration={bad}")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--duration"),
            "{bad}"
        );
    }
}
