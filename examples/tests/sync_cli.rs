//! The `sync` command end to end: a pipeline file over the demo API into a SQLite file,
//! its JSON output, `status`, `history`, `reset`, the quick form, and the exit codes.

use std::path::Path;
use std::process::{Command, Output};

use sync_examples::demo_api::DemoApi;

fn sync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sync"))
        .args(args)
        .output()
        .expect("the sync binary runs")
}

fn json_of(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A pipeline of the demo API's `items` stream (plus `extra` streams) into `db`.
fn pipeline(dir: &Path, api: &DemoApi, db: &Path, extra: &str) -> std::path::PathBuf {
    let stream = sync_examples::demo_api::items_stream(api.url());
    let mut config = serde_json::json!({
        "name": "demo",
        "database": format!("sqlite://{}", db.display()),
        "streams": [stream],
    });
    if !extra.is_empty() {
        let more: serde_json::Value = serde_json::from_str(extra).unwrap();
        config["streams"].as_array_mut().unwrap().push(more);
    }
    let path = dir.join("pipeline.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

#[test]
fn run_status_history_and_reset_through_a_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    let api = DemoApi::start(2_500).unwrap();
    let db = dir.path().join("demo.db");
    let file = pipeline(dir.path(), &api, &db, "");
    let file = file.to_str().unwrap();

    let out = sync(&["run", file, "--strategy", "full", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = json_of(&out);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["streams"][0]["rows_written"], 2_500);

    api.mutate(0.01);
    let out = sync(&["run", file, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json_of(&out)["streams"][0]["rows_written"], 25);

    let status = json_of(&sync(&["status", file, "--json"]));
    let position = status["streams"][0]["position"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(position.starts_with("(2024-01-02"), "{position}");
    let history = json_of(&sync(&["history", file, "items", "--json"]));
    let ledger = history["ledger"].as_array().unwrap();
    assert_eq!(ledger.first().unwrap()["strategy"], "full");
    assert_eq!(ledger.last().unwrap()["strategy"], "incremental");

    let refused = sync(&["reset", file, "items"]);
    assert_eq!(refused.status.code(), Some(2), "reset needs --yes");
    let out = sync(&["reset", file, "items", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status = json_of(&sync(&["status", file, "--json"]));
    assert_eq!(status["streams"][0]["position"], serde_json::Value::Null);
}

#[test]
fn exit_codes_tell_success_partial_failure_and_bad_config_apart() {
    let dir = tempfile::tempdir().unwrap();
    let api = DemoApi::start(100).unwrap();
    let db = dir.path().join("demo.db");
    // A second stream whose path does not exist: a permanent 404.
    let mut broken =
        serde_json::to_value(sync_examples::demo_api::items_stream(api.url())).unwrap();
    broken["name"] = "missing".into();
    broken["path"] = "/nowhere".into();
    let file = pipeline(dir.path(), &api, &db, &broken.to_string());
    let out = sync(&["run", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report = json_of(&out);
    assert_eq!(report["failed"], 1);
    assert_eq!(report["streams"][1]["error"]["kind"], "remote");

    // Only the good stream: success.
    let out = sync(&["run", file.to_str().unwrap(), "--stream", "items"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Bad config: an unknown field, a missing file, an unknown stream, a bad database URL.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nstreams = []\nsurprise = 1\n").unwrap();
    for args in [
        vec!["run", bad.to_str().unwrap()],
        vec!["run", "/nonexistent/pipeline.toml"],
        vec!["run", file.to_str().unwrap(), "--stream", "nope"],
        vec!["run", file.to_str().unwrap(), "--database", "mysql://x"],
        vec!["run", "--bogus-flag"],
    ] {
        let out = sync(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn the_quick_form_infers_the_columns_and_syncs_one_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let api = DemoApi::start(1_200).unwrap();
    let db = format!("sqlite://{}", dir.path().join("quick.db").display());
    let url = format!("{}/items", api.url());
    let args = [
        "run",
        "--url",
        &url,
        "--records-path",
        "items",
        "--primary-key",
        "id",
        "--cursor",
        "updated_at",
        "--cursor-param",
        "updated_since",
        "--version",
        "version",
        "--next-field",
        "has_more",
        "--ordered",
        "--database",
        &db,
        "--json",
    ];
    let out = sync(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json_of(&out)["streams"][0]["rows_written"], 1_200);
    api.mutate(0.01);
    let out = sync(&args);
    assert_eq!(json_of(&out)["streams"][0]["rows_written"], 12);

    let wrong = sync(&[
        "run",
        "--url",
        &url,
        "--records-path",
        "nope",
        "--primary-key",
        "id",
        "--database",
        &db,
    ]);
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
}
