//! The change queue in SQLite. SQLite has one writer at a time: an append takes the write lock
//! (`BEGIN IMMEDIATE`), numbers its entries after the largest committed number and commits, so
//! numbers become visible in number order and the safe high-water mark is simply the largest
//! committed number.

use async_trait::async_trait;
use sea_query::{Expr, ExprTrait, Order, Query, SqliteQueryBuilder};
use sea_query_rusqlite::RusqliteBinder;
use sync_core::queue::{ChangeQueue, QueueEntry};
use sync_core::{Error, Key, Result, SequenceNo, Window};

use crate::error::SqliteResultExt;
use crate::sql::{self, execute, id};
use crate::store::SqliteStore;

/// Sequence numbers are SQLite integers; the window bounds are clamped into that range.
fn to_i64(seq: SequenceNo) -> i64 {
    i64::try_from(seq.0).unwrap_or(i64::MAX)
}

fn max_seq(conn: &rusqlite::Connection, queue: &str) -> Result<i64> {
    let q = Query::select()
        .expr(Expr::col(id("seq")).max())
        .from(id(sql::QUEUE))
        .and_where(Expr::col(id("queue")).eq(queue))
        .to_owned();
    Ok(sql::query_i64(conn, &q)?.unwrap_or(0))
}

#[async_trait]
impl ChangeQueue for SqliteStore {
    async fn append(&self, queue: &str, entities: &[Key]) -> Result<Vec<SequenceNo>> {
        let queue = queue.to_string();
        let encoded: Vec<String> = entities
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        self.write(move |tx, _| {
            let mut next = max_seq(tx, &queue)?;
            let mut out = Vec::with_capacity(encoded.len());
            for e in &encoded {
                next = next
                    .checked_add(1)
                    .ok_or_else(|| Error::internal("queue sequence overflow"))?;
                let stmt = Query::insert()
                    .into_table(id(sql::QUEUE))
                    .columns([id("queue"), id("seq"), id("entity")])
                    .values_panic([queue.clone().into(), next.into(), e.clone().into()])
                    .to_owned();
                execute(tx, &stmt)?;
                out.push(SequenceNo(next as u128));
            }
            Ok(out)
        })
        .await
    }

    async fn read_window(&self, queue: &str, window: Window) -> Result<Vec<QueueEntry>> {
        let queue = queue.to_string();
        self.with_conn(move |conn, _| {
            let q = Query::select()
                .columns([id("seq"), id("entity")])
                .from(id(sql::QUEUE))
                .and_where(Expr::col(id("queue")).eq(queue.as_str()))
                .and_where(Expr::col(id("seq")).gt(to_i64(window.low)))
                .and_where(Expr::col(id("seq")).lte(to_i64(window.high)))
                .order_by(id("seq"), Order::Asc)
                .to_owned();
            let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
            let mut stmt = conn.prepare(&text).db()?;
            let mut rows = stmt.query(&*values.as_params()).db()?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().db()? {
                let seq: i64 = r.get(0).db()?;
                let entity: String = r.get(1).db()?;
                let entity: Key = serde_json::from_str(&entity).map_err(|e| {
                    Error::new(
                        sync_core::ErrorKind::CorruptState,
                        "stored queue entity is malformed",
                    )
                    .with_source(e)
                })?;
                out.push(QueueEntry {
                    seq: SequenceNo(seq as u128),
                    entity,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn safe_high_water_mark(&self, queue: &str) -> Result<SequenceNo> {
        let queue = queue.to_string();
        self.with_conn(move |conn, _| Ok(SequenceNo(max_seq(conn, &queue)? as u128)))
            .await
    }
}
