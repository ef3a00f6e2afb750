//! The change queue in PostgreSQL. Sequence numbers come from a counter row per queue that each
//! append increments inside its own transaction: the row lock serializes appenders, so numbers
//! are committed in number order and a reader never sees 3 before 2 commits. The safe
//! high-water mark is then the largest committed number.

use async_trait::async_trait;
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use sync_core::queue::{ChangeQueue, QueueEntry};
use sync_core::{Error, ErrorKind, Key, Result, SequenceNo, Window};

use crate::error::classify;
use crate::sql::{self, execute, id, qcol, table};
use crate::store::PostgresStore;

fn to_i64(seq: SequenceNo) -> i64 {
    i64::try_from(seq.0).unwrap_or(i64::MAX)
}

#[async_trait]
impl ChangeQueue for PostgresStore {
    async fn append(&self, queue: &str, entities: &[Key]) -> Result<Vec<SequenceNo>> {
        let encoded: Vec<String> = entities
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        let schema = self.schema.clone();
        self.transact(move |tx| {
            let (schema, queue, encoded) = (schema.clone(), queue.to_string(), encoded.clone());
            Box::pin(async move {
                let n = encoded.len() as i64;
                let bump = Query::insert()
                    .into_table(table(&schema, sql::QUEUE_COUNTERS))
                    .columns([id("queue"), id("last")])
                    .values_panic([queue.clone().into(), n.into()])
                    .on_conflict(
                        OnConflict::column(id("queue"))
                            .value(
                                id("last"),
                                qcol(&schema, sql::QUEUE_COUNTERS, "last").add(n),
                            )
                            .to_owned(),
                    )
                    .returning_col(id("last"))
                    .to_owned();
                let last = sql::query_i64(tx, &bump)
                    .await?
                    .ok_or_else(|| Error::internal("no counter returned"))?;
                let first = last - n + 1;
                let mut out = Vec::with_capacity(encoded.len());
                for (i, e) in encoded.iter().enumerate() {
                    let seq = first + i as i64;
                    let insert = Query::insert()
                        .into_table(table(&schema, sql::QUEUE))
                        .columns([id("queue"), id("seq"), id("entity")])
                        .values_panic([queue.clone().into(), seq.into(), e.clone().into()])
                        .to_owned();
                    execute(tx, &insert).await?;
                    out.push(SequenceNo(seq as u128));
                }
                Ok(out)
            })
        })
        .await
    }

    async fn read_window(&self, queue: &str, window: Window) -> Result<Vec<QueueEntry>> {
        let q = Query::select()
            .columns([id("seq"), id("entity")])
            .from(table(&self.schema, sql::QUEUE))
            .and_where(Expr::col(id("queue")).eq(queue))
            .and_where(Expr::col(id("seq")).gt(to_i64(window.low)))
            .and_where(Expr::col(id("seq")).lte(to_i64(window.high)))
            .order_by(id("seq"), Order::Asc)
            .to_owned();
        let client = self.client().await?;
        let rows = sql::query(&**client, &q).await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get(0).map_err(classify)?;
                let entity: String = r.try_get(1).map_err(classify)?;
                let entity: Key = serde_json::from_str(&entity).map_err(|e| {
                    Error::new(ErrorKind::CorruptState, "stored queue entity is malformed")
                        .with_source(e)
                })?;
                Ok(QueueEntry {
                    seq: SequenceNo(seq as u128),
                    entity,
                })
            })
            .collect()
    }

    async fn safe_high_water_mark(&self, queue: &str) -> Result<SequenceNo> {
        let q = Query::select()
            .expr(Expr::col(id("seq")).max())
            .from(table(&self.schema, sql::QUEUE))
            .and_where(Expr::col(id("queue")).eq(queue))
            .to_owned();
        let client = self.client().await?;
        Ok(SequenceNo(
            sql::query_i64(&**client, &q).await?.unwrap_or(0) as u128,
        ))
    }
}
