//! Conformance clauses of the `Stager` contract.

use std::sync::Arc;

use crate::error::ErrorKind;
use crate::fault::{FaultAction, FaultPoint};
use crate::position::Position;
use crate::record::Row;
use crate::schema::{Column, ColumnType, StreamSchema};
use crate::stager::{PromoteMode, ReplaceScope, RowRule, StagingRun, ValidationRules};
use crate::testkit::{batch, commit, ids, item, items_schema, key, StoreHandles};
use crate::value::Value;

async fn open(
    h: &StoreHandles,
    sync: &str,
    schema: &Arc<StreamSchema>,
) -> (StagingRun, crate::FenceToken) {
    h.stager.ensure_stream(schema).await.unwrap();
    let fence = h.checkpoints.acquire_fence(sync).await.unwrap();
    let run = h
        .stager
        .begin(sync, schema.clone(), fence, serde_json::json!({"w": 1}))
        .await
        .unwrap();
    (run, fence)
}

/// Stages `rows` as `(Start, Offset(n)]`, validates, and promotes with a first commit.
async fn load(
    h: &StoreHandles,
    sync: &str,
    schema: &Arc<StreamSchema>,
    rows: Vec<Row>,
    mode: PromoteMode,
) {
    let (run, fence) = open(h, sync, schema).await;
    let expected = h.checkpoints.load(sync).await.unwrap();
    let from = expected
        .as_ref()
        .map_or(Position::Start, |s| s.state.position.clone());
    let to = Position::Offset(match &from {
        Position::Offset(o) => o + 1,
        _ => 1,
    });
    h.stager
        .stage(&run, batch(schema, rows, Position::Start, to.clone()))
        .await
        .unwrap();
    h.stager
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let c = commit(sync, expected.map(|s| s.version), fence, from, to);
    h.stager.promote(&run, &mode, &c, true).await.unwrap();
}

/// `ensure_stream` adds new columns as nullable, keeps existing rows (NULL in the new
/// column) and the version guard, accepts a source still on the old schema, and rejects a
/// changed primary key.
pub async fn stager_schema_evolution_adds_columns(h: StoreHandles) {
    let schema = items_schema("evolve");
    load(
        &h,
        "s",
        &schema,
        vec![item("a", 1, Some(1))],
        PromoteMode::Upsert,
    )
    .await;
    let mut wider = StreamSchema::builder("evolve");
    for c in schema.columns() {
        wider = wider.with_column(c.clone());
    }
    let wider = wider
        .with_column(Column::new("extra", ColumnType::Text))
        .with_primary_key(["id"])
        .with_version("version")
        .build()
        .unwrap();
    h.stager.ensure_stream(&wider).await.unwrap();
    let rows = h.stager.read_target("evolve").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].values().len(), 6);
    assert_eq!(rows[0].get(5), &Value::Null);
    // The version guard survives the evolution, and a source on the old schema still loads.
    load(
        &h,
        "s",
        &schema,
        vec![item("a", 0, Some(1))],
        PromoteMode::Upsert,
    )
    .await;
    assert_eq!(
        h.stager.read_target("evolve").await.unwrap()[0].get(1),
        &Value::from(1)
    );
    load(
        &h,
        "s",
        &schema,
        vec![item("a", 2, Some(1))],
        PromoteMode::Upsert,
    )
    .await;
    let rows = h.stager.read_target("evolve").await.unwrap();
    assert_eq!(
        (rows[0].get(1), rows[0].get(5)),
        (&Value::from(2), &Value::Null)
    );
    let rekeyed = StreamSchema::builder("evolve")
        .with_column(Column::required("id", ColumnType::Text))
        .with_column(Column::required("version", ColumnType::Integer))
        .with_primary_key(["version"])
        .build()
        .unwrap();
    assert_eq!(
        h.stager.ensure_stream(&rekeyed).await.unwrap_err().kind(),
        ErrorKind::Config
    );
}

/// `begin` returns the open run with its progress, params and staged rows.
pub async fn stager_begin_resumes_open_run(h: StoreHandles) {
    let schema = items_schema("resume");
    let (run, fence) = open(&h, "s", &schema).await;
    assert!(!run.resumed);
    h.stager
        .stage(
            &run,
            batch(
                &schema,
                vec![item("a", 1, Some(1))],
                Position::Start,
                Position::Page(1),
            ),
        )
        .await
        .unwrap();
    let again = h
        .stager
        .begin("s", schema.clone(), fence, serde_json::json!({"w": 2}))
        .await
        .unwrap();
    assert!(again.resumed);
    assert_eq!(again.run_id, run.run_id);
    assert_eq!(again.progress, Position::Page(1));
    assert_eq!(again.params, serde_json::json!({"w": 1}));
    assert_eq!(again.staged_rows, 1);
}

/// `stage` rejects a delta that does not continue from the run's progress, staging nothing.
pub async fn stager_stage_rejects_discontinuous_delta(h: StoreHandles) {
    let schema = items_schema("chain");
    let (run, _) = open(&h, "s", &schema).await;
    h.stager
        .stage(
            &run,
            batch(
                &schema,
                vec![item("a", 1, Some(1))],
                Position::Start,
                Position::Page(1),
            ),
        )
        .await
        .unwrap();
    let err = h
        .stager
        .stage(
            &run,
            batch(
                &schema,
                vec![item("b", 1, Some(1))],
                Position::Page(2),
                Position::Page(3),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointDelta);
    let back = h
        .stager
        .stage(
            &run,
            batch(
                &schema,
                vec![item("b", 1, Some(1))],
                Position::Page(1),
                Position::Page(0),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(back.kind(), ErrorKind::CheckpointDelta);
    let resumed = h
        .stager
        .begin("s", schema.clone(), run.fence, serde_json::Value::Null)
        .await
        .unwrap();
    assert_eq!(
        (resumed.progress, resumed.staged_rows),
        (Position::Page(1), 1)
    );
}

/// Validation keeps one row per key: the newest by the version guard, the last staged on ties.
pub async fn stager_validate_keeps_newest_duplicate(h: StoreHandles) {
    let schema = items_schema("dedupe");
    let (run, _) = open(&h, "s", &schema).await;
    let mut tie = item("b", 2, Some(5));
    tie.values_mut()[4] = Value::from("second");
    // Duplicates arrive in different batches of one run (a batch itself rejects them).
    let first = vec![item("a", 3, Some(1)), item("b", 2, Some(5))];
    let second = vec![item("a", 1, Some(9)), tie.clone()];
    h.stager
        .stage(
            &run,
            batch(&schema, first, Position::Start, Position::Page(1)),
        )
        .await
        .unwrap();
    h.stager
        .stage(
            &run,
            batch(&schema, second, Position::Page(1), Position::Page(1)),
        )
        .await
        .unwrap();
    let report = h
        .stager
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    assert_eq!(
        (report.valid, report.duplicates_dropped, report.quarantined),
        (2, 2, 0)
    );
    h.stager
        .promote(
            &run,
            &PromoteMode::Upsert,
            &commit(
                "s",
                None,
                run_fence(&h, "s").await,
                Position::Start,
                Position::Page(1),
            ),
            true,
        )
        .await
        .unwrap();
    let target = h.stager.read_target("dedupe").await.unwrap();
    assert_eq!(target, vec![item("a", 3, Some(1)), tie]);
}

async fn run_fence(h: &StoreHandles, sync: &str) -> crate::FenceToken {
    h.checkpoints.acquire_fence(sync).await.unwrap()
}

#[derive(Debug)]
struct NoBanned;
impl RowRule for NoBanned {
    fn name(&self) -> &str {
        "no_banned"
    }
    fn check(&self, _: &StreamSchema, row: &Row) -> Result<(), String> {
        if row.get(0).as_str() == Some("banned") {
            Err("id is banned".into())
        } else {
            Ok(())
        }
    }
}

/// Rows with missing required values, a missing required extra column or a failing custom
/// rule are quarantined with a reason and counted, by the promotion and in its ledger row
/// (type mismatches never reach staging: a batch rejects them).
pub async fn stager_validate_quarantines_with_reason(h: StoreHandles) {
    let schema = items_schema("quarantine");
    let (run, fence) = open(&h, "s", &schema).await;
    let mut no_version = item("v", 1, Some(1));
    no_version.values_mut()[1] = Value::Null;
    let rows = vec![
        item("ok", 1, Some(1)),
        no_version,
        item("c", 1, None),
        item("banned", 1, Some(1)),
    ];
    h.stager
        .stage(
            &run,
            batch(&schema, rows, Position::Start, Position::Page(1)),
        )
        .await
        .unwrap();
    let rules = ValidationRules {
        require: vec![2],
        require_reason: Some("missing cursor value".into()),
        rules: vec![Arc::new(NoBanned)],
    };
    let report = h.stager.validate(&run, &rules).await.unwrap();
    assert_eq!((report.valid, report.quarantined), (1, 3));
    assert!(
        h.stager.quarantined("s").await.unwrap().is_empty(),
        "rows are quarantined with the promotion, not before"
    );
    let c = commit("s", None, fence, Position::Start, Position::Page(1));
    let promoted = h
        .stager
        .promote(&run, &PromoteMode::Upsert, &c, true)
        .await
        .unwrap();
    assert_eq!(promoted.quarantined, 3);
    let q = h.stager.quarantined("s").await.unwrap();
    let mut reasons: Vec<_> = q
        .iter()
        .map(|q| (q.row.get(0).to_string(), q.reason.clone()))
        .collect();
    reasons.sort();
    let expected = [
        ("banned", "no_banned: id is banned"),
        ("c", "missing cursor value"),
        ("v", "missing required field \"version\""),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(reasons, expected);
    assert_eq!(
        q.iter()
            .find(|q| q.row.get(0) == &Value::from("c"))
            .unwrap()
            .row,
        item("c", 1, None)
    );
    assert_eq!(
        ids(&h.stager.read_target("quarantine").await.unwrap()),
        ["ok"]
    );
    assert_eq!(h.checkpoints.ledger("s").await.unwrap()[0].rows_rejected, 3);
}

/// Promote refuses staged rows that were not validated, and changes nothing.
pub async fn stager_promote_refuses_unvalidated(h: StoreHandles) {
    let schema = items_schema("unvalidated");
    let (run, fence) = open(&h, "s", &schema).await;
    h.stager
        .stage(
            &run,
            batch(
                &schema,
                vec![item("a", 1, Some(1))],
                Position::Start,
                Position::Page(1),
            ),
        )
        .await
        .unwrap();
    let c = commit("s", None, fence, Position::Start, Position::Page(1));
    assert!(h
        .stager
        .promote(&run, &PromoteMode::Upsert, &c, true)
        .await
        .is_err());
    assert!(h
        .stager
        .read_target("unvalidated")
        .await
        .unwrap()
        .is_empty());
    assert!(h.checkpoints.load("s").await.unwrap().is_none());
}

/// The upsert never replaces a row by one with an older version, and applies deletes.
pub async fn stager_upsert_never_replaces_newer(h: StoreHandles) {
    let schema = items_schema("guard");
    load(
        &h,
        "s",
        &schema,
        vec![
            item("a", 5, Some(5)),
            item("b", 1, Some(1)),
            item("c", 1, Some(1)),
        ],
        PromoteMode::Upsert,
    )
    .await;
    let (run, fence) = open(&h, "s", &schema).await;
    let b = batch(
        &schema,
        vec![item("a", 4, Some(9)), item("b", 2, Some(2))],
        Position::Start,
        Position::Offset(2),
    )
    .with_deletes(vec![key("c"), key("zz")]);
    h.stager.stage(&run, b).await.unwrap();
    h.stager
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let c = commit(
        "s",
        Some(1),
        fence,
        Position::Offset(1),
        Position::Offset(2),
    );
    let report = h
        .stager
        .promote(&run, &PromoteMode::Upsert, &c, true)
        .await
        .unwrap();
    assert_eq!(
        (
            report.inserted,
            report.updated,
            report.unchanged,
            report.deleted
        ),
        (0, 1, 1, 1)
    );
    assert_eq!(
        h.stager.read_target("guard").await.unwrap(),
        vec![item("a", 5, Some(5)), item("b", 2, Some(2))]
    );
    let ledger = h.checkpoints.ledger("s").await.unwrap();
    assert_eq!(ledger.last().unwrap().rows_written, 2);
}

/// Replace(All) deletes target rows the snapshot lacks; Replace(Since) only within scope.
pub async fn stager_replace_deletes_missing_within_scope(h: StoreHandles) {
    let schema = items_schema("replace");
    let rows = vec![
        item("a", 1, Some(1)),
        item("b", 1, Some(5)),
        item("c", 1, Some(9)),
    ];
    load(&h, "s", &schema, rows, PromoteMode::Upsert).await;
    let scope = ReplaceScope::Since {
        column: 2,
        since: Value::from(5),
    };
    load(
        &h,
        "s",
        &schema,
        vec![item("c", 1, Some(9))],
        PromoteMode::Replace(scope),
    )
    .await;
    assert_eq!(
        ids(&h.stager.read_target("replace").await.unwrap()),
        ["a", "c"]
    );
    load(
        &h,
        "s",
        &schema,
        vec![item("d", 1, Some(1))],
        PromoteMode::Replace(ReplaceScope::All),
    )
    .await;
    assert_eq!(ids(&h.stager.read_target("replace").await.unwrap()), ["d"]);
}

/// A promotion whose checkpoint commit fails (stale fence) applies nothing; the staged rows
/// stay for a retry.
pub async fn stager_failed_commit_changes_nothing(h: StoreHandles) {
    let schema = items_schema("atomic");
    let (run, fence) = open(&h, "s", &schema).await;
    let rows = vec![item("a", 1, Some(1))];
    h.stager
        .stage(
            &run,
            batch(&schema, rows, Position::Start, Position::Page(1)),
        )
        .await
        .unwrap();
    h.stager
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let newer = h.checkpoints.acquire_fence("s").await.unwrap();
    let failing = [
        (
            commit("s", None, fence, Position::Start, Position::Page(1)),
            ErrorKind::Fenced,
        ),
        (
            commit("s", Some(4), newer, Position::Start, Position::Page(1)),
            ErrorKind::Conflict,
        ),
        (
            commit("s", None, newer, Position::Page(7), Position::Page(8)),
            ErrorKind::CheckpointDelta,
        ),
    ];
    for (c, kind) in failing {
        let err = h
            .stager
            .promote(&run, &PromoteMode::Upsert, &c, true)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind);
        assert!(h.stager.read_target("atomic").await.unwrap().is_empty());
        assert!(h.checkpoints.load("s").await.unwrap().is_none());
        assert!(h.checkpoints.ledger("s").await.unwrap().is_empty());
    }
    let ok = commit("s", None, newer, Position::Start, Position::Page(1));
    h.stager
        .promote(&run, &PromoteMode::Upsert, &ok, true)
        .await
        .unwrap();
    assert_eq!(ids(&h.stager.read_target("atomic").await.unwrap()), ["a"]);
}

/// A crash inside the commit applies nothing; a crash after it leaves everything applied
/// and reports an outcome-unknown error.
pub async fn stager_commit_faults_are_atomic(h: StoreHandles) {
    let schema = items_schema("faults");
    let (run, fence) = open(&h, "s", &schema).await;
    let rows = vec![item("a", 1, Some(1))];
    h.stager
        .stage(
            &run,
            batch(&schema, rows, Position::Start, Position::Page(1)),
        )
        .await
        .unwrap();
    h.stager
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let c = commit("s", None, fence, Position::Start, Position::Page(1));
    h.faults.arm(FaultPoint::DuringCommit, FaultAction::Error);
    let err = h
        .stager
        .promote(&run, &PromoteMode::Upsert, &c, true)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InjectedFault);
    assert!(h.stager.read_target("faults").await.unwrap().is_empty());
    assert!(h.checkpoints.load("s").await.unwrap().is_none());
    assert!(h.checkpoints.ledger("s").await.unwrap().is_empty());
    h.faults.arm(FaultPoint::AfterCommit, FaultAction::Error);
    let err = h
        .stager
        .promote(&run, &PromoteMode::Upsert, &c, true)
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown());
    assert_eq!(ids(&h.stager.read_target("faults").await.unwrap()), ["a"]);
    assert_eq!(
        h.checkpoints
            .load("s")
            .await
            .unwrap()
            .unwrap()
            .state
            .position,
        Position::Page(1)
    );
    assert_eq!(h.checkpoints.ledger("s").await.unwrap().len(), 1);
    let next = h
        .stager
        .begin("s", schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap();
    assert!(!next.resumed, "the closing promotion ended the run");
}

/// `abort` discards staged rows and ends the run; target and checkpoint stay.
pub async fn stager_abort_discards_staged(h: StoreHandles) {
    let schema = items_schema("abort");
    load(
        &h,
        "s",
        &schema,
        vec![item("a", 1, Some(1))],
        PromoteMode::Upsert,
    )
    .await;
    let (run, fence) = open(&h, "s", &schema).await;
    h.stager
        .stage(
            &run,
            batch(
                &schema,
                vec![item("b", 1, Some(1))],
                Position::Start,
                Position::Page(1),
            ),
        )
        .await
        .unwrap();
    h.stager.abort(&run).await.unwrap();
    let fresh = h
        .stager
        .begin("s", schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap();
    assert!(!fresh.resumed);
    assert_eq!(fresh.staged_rows, 0);
    assert_eq!(ids(&h.stager.read_target("abort").await.unwrap()), ["a"]);
    assert_eq!(h.checkpoints.load("s").await.unwrap().unwrap().version, 1);
}

/// `read_target` is ordered by key; `read_target_keys` returns only the keys asked for.
pub async fn stager_read_target_by_key(h: StoreHandles) {
    let schema = items_schema("read");
    load(
        &h,
        "s",
        &schema,
        vec![
            item("c", 1, Some(1)),
            item("a", 1, Some(1)),
            item("b", 1, Some(1)),
        ],
        PromoteMode::Upsert,
    )
    .await;
    assert_eq!(
        ids(&h.stager.read_target("read").await.unwrap()),
        ["a", "b", "c"]
    );
    let some = h
        .stager
        .read_target_keys("read", &[key("c"), key("x"), key("a")])
        .await
        .unwrap();
    assert_eq!(ids(&some), ["a", "c"]);
}

/// Hostile identifiers round-trip through staging and promotion exactly.
pub async fn stager_hostile_identifiers_round_trip(h: StoreHandles) {
    for name in [
        "select",
        "Order",
        "a\"b",
        "x\"; DROP TABLE canary;--",
        &"n".repeat(63),
    ] {
        let other = if name == "Order" { "select" } else { "Order" };
        let schema = Arc::new(
            StreamSchema::builder(name)
                .with_column(Column::required(name, ColumnType::Text))
                .with_column(Column::new(other, ColumnType::Integer))
                .with_primary_key([name])
                .build()
                .unwrap(),
        );
        let row = Row::new(vec![Value::from(name), Value::from(1)]);
        load(&h, name, &schema, vec![row.clone()], PromoteMode::Upsert).await;
        assert_eq!(
            h.stager.read_target(name).await.unwrap(),
            vec![row],
            "{name}"
        );
    }
}

/// A replace never deletes the key of a row that validation set aside: it is still in the
/// snapshot.
pub async fn stager_replace_keeps_keys_of_quarantined_rows(h: StoreHandles) {
    let schema = items_schema("replace_q");
    load(
        &h,
        "s",
        &schema,
        vec![item("a", 1, Some(1)), item("b", 1, Some(1))],
        PromoteMode::Upsert,
    )
    .await;
    let mut broken = item("a", 2, Some(1));
    broken.values_mut()[1] = Value::Null;
    load(
        &h,
        "s",
        &schema,
        vec![broken, item("c", 1, Some(1))],
        PromoteMode::Replace(ReplaceScope::All),
    )
    .await;
    let target = h.stager.read_target("replace_q").await.unwrap();
    assert_eq!(
        target,
        vec![item("a", 1, Some(1)), item("c", 1, Some(1))],
        "a stays at its old version, b is gone"
    );
    assert_eq!(h.stager.quarantined("s").await.unwrap().len(), 1);
}

/// Rows staged after a promotion that kept the run open are validated like the first ones:
/// promoting them unvalidated is refused (and keeps them), and validation quarantines them.
pub async fn stager_rows_after_an_open_promotion_are_validated(h: StoreHandles) {
    let schema = items_schema("reopen");
    let (run, fence) = open(&h, "s", &schema).await;
    let first = vec![item("a", 1, Some(1)), item("b", 1, Some(1))];
    h.stager
        .stage(
            &run,
            batch(&schema, first, Position::Start, Position::Page(1)),
        )
        .await
        .unwrap();
    h.stager
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let c1 = commit("s", None, fence, Position::Start, Position::Page(1));
    h.stager
        .promote(&run, &PromoteMode::Upsert, &c1, false)
        .await
        .unwrap();
    let mut broken = item("c", 1, Some(1));
    broken.values_mut()[1] = Value::Null;
    let second = vec![broken, item("d", 1, Some(1))];
    h.stager
        .stage(
            &run,
            batch(&schema, second, Position::Page(1), Position::Page(2)),
        )
        .await
        .unwrap();
    let c2 = commit("s", Some(1), fence, Position::Page(1), Position::Page(2));
    let err = h
        .stager
        .promote(&run, &PromoteMode::Upsert, &c2, false)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "unvalidated rows must not be promoted: {err}"
    );
    let report = h
        .stager
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    assert_eq!((report.valid, report.quarantined), (1, 1));
    let promoted = h
        .stager
        .promote(&run, &PromoteMode::Upsert, &c2, true)
        .await
        .unwrap();
    assert_eq!((promoted.inserted, promoted.quarantined), (1, 1));
    assert_eq!(
        ids(&h.stager.read_target("reopen").await.unwrap()),
        ["a", "b", "d"]
    );
    assert_eq!(
        ids(&[h.stager.quarantined("s").await.unwrap()[0].row.clone()]),
        ["c"]
    );
}

/// A guard of several columns compares them in order with NULL as the oldest value: a row
/// whose stored guard has a NULL part is replaced by one that fills it in.
pub async fn stager_composite_guard_treats_null_as_oldest(h: StoreHandles) {
    let schema = Arc::new(
        StreamSchema::builder("cg")
            .with_column(Column::required("id", ColumnType::Text))
            .with_column(Column::new("day", ColumnType::Integer))
            .with_column(Column::new("seq", ColumnType::Integer))
            .with_column(Column::new("body", ColumnType::Text))
            .with_primary_key(["id"])
            .with_cursor(["day", "seq"])
            .build()
            .unwrap(),
    );
    let row = |day: i64, seq: Option<i64>, body: &str| {
        Row::new(vec![
            Value::from("a"),
            Value::from(day),
            seq.map_or(Value::Null, Value::from),
            Value::from(body),
        ])
    };
    load(
        &h,
        "s",
        &schema,
        vec![row(1, None, "old")],
        PromoteMode::Upsert,
    )
    .await;
    load(
        &h,
        "s",
        &schema,
        vec![row(1, Some(5), "new")],
        PromoteMode::Upsert,
    )
    .await;
    assert_eq!(
        h.stager.read_target("cg").await.unwrap(),
        vec![row(1, Some(5), "new")]
    );
    load(
        &h,
        "s",
        &schema,
        vec![row(0, Some(9), "older")],
        PromoteMode::Upsert,
    )
    .await;
    load(
        &h,
        "s",
        &schema,
        vec![row(1, None, "null again")],
        PromoteMode::Upsert,
    )
    .await;
    assert_eq!(
        h.stager.read_target("cg").await.unwrap(),
        vec![row(1, Some(5), "new")],
        "older rows never win"
    );
}

/// Deduplication treats a NULL version as the oldest: a key staged with a version and then
/// without one keeps the versioned row.
pub async fn stager_dedupe_treats_null_version_as_oldest(h: StoreHandles) {
    let schema = Arc::new(
        StreamSchema::builder("nullver")
            .with_column(Column::required("id", ColumnType::Text))
            .with_column(Column::new("version", ColumnType::Integer))
            .with_column(Column::new("body", ColumnType::Text))
            .with_primary_key(["id"])
            .with_version("version")
            .build()
            .unwrap(),
    );
    let row = |v: Option<i64>, body: &str| {
        Row::new(vec![
            Value::from("a"),
            v.map_or(Value::Null, Value::from),
            Value::from(body),
        ])
    };
    let (run, fence) = open(&h, "s", &schema).await;
    h.stager
        .stage(
            &run,
            batch(
                &schema,
                vec![row(Some(5), "five")],
                Position::Start,
                Position::Page(1),
            ),
        )
        .await
        .unwrap();
    h.stager
        .stage(
            &run,
            batch(
                &schema,
                vec![row(None, "none")],
                Position::Page(1),
                Position::Page(2),
            ),
        )
        .await
        .unwrap();
    let report = h
        .stager
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    assert_eq!(report.duplicates_dropped, 1);
    let c = commit("s", None, fence, Position::Start, Position::Page(2));
    h.stager
        .promote(&run, &PromoteMode::Upsert, &c, true)
        .await
        .unwrap();
    assert_eq!(
        h.stager.read_target("nullver").await.unwrap(),
        vec![row(Some(5), "five")]
    );
}

/// A writer whose run was taken over by a newer `begin` (a newer fence) can no longer stage,
/// validate, abort or begin it; the new owner carries on with what was staged.
pub async fn stager_a_fenced_out_writer_cannot_touch_the_run(h: StoreHandles) {
    let schema = items_schema("fenced");
    let (old, old_fence) = open(&h, "s", &schema).await;
    h.stager
        .stage(
            &old,
            batch(
                &schema,
                vec![item("a", 1, Some(1))],
                Position::Start,
                Position::Page(1),
            ),
        )
        .await
        .unwrap();
    let new_fence = h.checkpoints.acquire_fence("s").await.unwrap();
    let new = h
        .stager
        .begin("s", schema.clone(), new_fence, serde_json::Value::Null)
        .await
        .unwrap();
    assert!(new.resumed && new.run_id == old.run_id && new.fence == new_fence);
    let late = batch(
        &schema,
        vec![item("x", 1, Some(1))],
        Position::Page(1),
        Position::Page(2),
    );
    assert_eq!(
        h.stager.stage(&old, late).await.unwrap_err().kind(),
        ErrorKind::Fenced
    );
    assert_eq!(
        h.stager
            .validate(&old, &ValidationRules::default())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Fenced
    );
    assert_eq!(
        h.stager.abort(&old).await.unwrap_err().kind(),
        ErrorKind::Fenced
    );
    let again = h
        .stager
        .begin("s", schema.clone(), old_fence, serde_json::Value::Null)
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Fenced);
    h.stager
        .stage(
            &new,
            batch(
                &schema,
                vec![item("b", 1, Some(1))],
                Position::Page(1),
                Position::Page(2),
            ),
        )
        .await
        .unwrap();
    h.stager
        .validate(&new, &ValidationRules::default())
        .await
        .unwrap();
    let c = commit("s", None, new_fence, Position::Start, Position::Page(2));
    h.stager
        .promote(&new, &PromoteMode::Upsert, &c, true)
        .await
        .unwrap();
    assert_eq!(
        ids(&h.stager.read_target("fenced").await.unwrap()),
        ["a", "b"]
    );
}
