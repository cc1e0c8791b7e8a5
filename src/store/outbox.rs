//! The outbox: events written in the same transaction as the change they
//! report, and the queue of their deliveries. The delivery worker claims
//! due deliveries with `FOR UPDATE SKIP LOCKED` and holds the row locks
//! while it sends them, so replicas never send one event at the same time;
//! only the oldest undelivered event of an identity (per endpoint) is due,
//! so each identity's events arrive in order.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use serde_json::Value;
use uuid::Uuid;

use super::schema::{event_deliveries, events};
use super::{Store, StoreError};
use crate::domain::IdentityId;

/// An event about to be written with the change it reports.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub kind: &'static str,
    pub identity_id: IdentityId,
    pub occurred_at: DateTime<Utc>,
    /// The body every endpoint receives.
    pub payload: Value,
    /// The configured endpoints that want this type.
    pub endpoints: Vec<String>,
    /// Not deliverable yet, for at most this long: a login event waiting
    /// for its session id. The bound frees the identity's later events
    /// even when the process that would release it died.
    pub held: Option<std::time::Duration>,
}

/// A stored event as the audit reads it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub seq: i64,
    pub id: Uuid,
    pub kind: String,
    pub identity_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub payload: Value,
    pub settled_at: Option<DateTime<Utc>>,
}

/// Where one event stands with one endpoint.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = event_deliveries)]
pub struct DeliveryRow {
    pub event_seq: i64,
    pub endpoint: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery the worker holds the lock of until it reports back.
#[derive(Debug, Clone, QueryableByName)]
pub struct DueDelivery {
    #[diesel(sql_type = BigInt)]
    pub event_seq: i64,
    #[diesel(sql_type = Text)]
    pub endpoint: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub occurred_at: DateTime<Utc>,
    #[diesel(sql_type = Jsonb)]
    pub payload: Value,
}

/// What became of one claimed delivery.
#[derive(Debug, Clone)]
pub enum DeliveryResult {
    Delivered,
    /// Try again after `retry_in`.
    Retry {
        error: String,
        retry_in: std::time::Duration,
    },
    /// Never delivered: the identity's next events go out.
    GiveUp {
        error: String,
    },
}

/// The queue as `/metrics` reports it.
#[derive(Debug, Clone, Copy, Default, QueryableByName)]
pub struct Backlog {
    /// Deliveries not yet made (held ones included).
    #[diesel(sql_type = BigInt)]
    pub undelivered: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub oldest: Option<DateTime<Utc>>,
}

/// Writes events (and their deliveries) on `conn`, inside the caller's
/// transaction: one statement each.
pub(super) fn append(conn: &mut PgConnection, new: &[NewEvent]) -> Result<(), StoreError> {
    for event in new {
        let state = if event.held.is_some() {
            "held"
        } else {
            "pending"
        };
        // A held delivery's next_attempt_at is the end of its hold.
        let hold_ms = event.held.map_or(0, millis);
        diesel::sql_query(
            "WITH ev AS ( \
               INSERT INTO events (id, type, identity_id, occurred_at, payload, settled_at) \
               VALUES ($1, $2, $3, $4, $5, CASE WHEN cardinality($6::text[]) = 0 THEN $4 END) \
               RETURNING seq) \
             INSERT INTO event_deliveries (event_seq, endpoint, identity_id, state, next_attempt_at) \
             SELECT ev.seq, endpoint, $3, $7, now() + $8 * interval '1 millisecond' \
             FROM ev, unnest($6::text[]) AS endpoint",
        )
        .bind::<SqlUuid, _>(event.id)
        .bind::<Text, _>(event.kind)
        .bind::<SqlUuid, _>(event.identity_id.as_uuid())
        .bind::<Timestamptz, _>(event.occurred_at)
        .bind::<Jsonb, _>(&event.payload)
        .bind::<Array<Text>, _>(&event.endpoints)
        .bind::<Text, _>(state)
        .bind::<BigInt, _>(hold_ms)
        .execute(conn)?;
    }
    Ok(())
}

pub(super) fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Makes a held event deliverable, with `data.kratos_session_id` filled
/// in when it became known. An event whose hold expired went out without
/// it and is not sent again: its payload stays as it was delivered.
pub(super) fn release(
    conn: &mut PgConnection,
    event: Uuid,
    kratos_session_id: Option<Uuid>,
) -> Result<(), StoreError> {
    if let Some(session) = kratos_session_id {
        diesel::sql_query(
            "UPDATE events e SET payload = jsonb_set(payload, '{data,kratos_session_id}', to_jsonb($2::text)) \
             WHERE id = $1 AND EXISTS (SELECT 1 FROM event_deliveries d \
               WHERE d.event_seq = e.seq AND d.state = 'held')",
        )
        .bind::<SqlUuid, _>(event)
        .bind::<Text, _>(session.to_string())
        .execute(conn)?;
    }
    diesel::sql_query(
        "UPDATE event_deliveries SET state = 'pending', next_attempt_at = now() \
         WHERE state = 'held' AND event_seq = (SELECT seq FROM events WHERE id = $1)",
    )
    .bind::<SqlUuid, _>(event)
    .execute(conn)?;
    Ok(())
}

impl Store {
    /// Writes events that report no change of their own (a refused login,
    /// an export into Kratos).
    pub async fn append_events(&self, new: Vec<NewEvent>) -> Result<(), StoreError> {
        self.run("append_events", move |conn| {
            conn.transaction(|conn| append(conn, &new))
        })
        .await?;
        self.outbox_written();
        Ok(())
    }

    /// An identity's events, newest first, before `before` (a `seq`).
    pub async fn identity_events(
        &self,
        identity: IdentityId,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(EventRow, Vec<DeliveryRow>)>, StoreError> {
        self.run("identity_events", move |conn| {
            let mut query = events::table
                .filter(events::identity_id.eq(identity.as_uuid()))
                .order(events::seq.desc())
                .limit(limit)
                .select(EventRow::as_select())
                .into_boxed();
            if let Some(before) = before {
                query = query.filter(events::seq.lt(before));
            }
            let rows = query.load(conn)?;
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let deliveries: Vec<DeliveryRow> = event_deliveries::table
                .filter(event_deliveries::event_seq.eq_any(&seqs))
                .order((event_deliveries::event_seq, event_deliveries::endpoint))
                .select(DeliveryRow::as_select())
                .load(conn)?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let own = deliveries
                        .iter()
                        .filter(|d| d.event_seq == row.seq)
                        .cloned()
                        .collect();
                    (row, own)
                })
                .collect())
        })
        .await
    }

    /// Claims up to `limit` due deliveries to `endpoints` (the oldest
    /// undelivered one per identity and endpoint), hands them to `deliver`
    /// while their rows stay locked, and saves what it reports; then, in
    /// the same transaction, the deliveries that became due by it (each
    /// identity's next), for up to `passes` passes. Other replicas see the
    /// delivered rows as pending and locked until the commit, so they never
    /// take an identity's next event meanwhile. `deliver` runs on the
    /// blocking pool: it may block on async work. Answers how many were
    /// claimed.
    pub async fn deliver_due<F>(
        &self,
        endpoints: Vec<String>,
        limit: i64,
        passes: usize,
        mut deliver: F,
    ) -> Result<usize, StoreError>
    where
        F: FnMut(Vec<DueDelivery>) -> Vec<DeliveryResult> + Send + 'static,
    {
        self.run("deliver_due", move |conn| {
            conn.transaction(|conn| {
                release_expired_holds(conn, &endpoints)?;
                let mut claimed = 0;
                for _ in 0..passes.max(1) {
                    let due = claim_due(conn, &endpoints, limit)?;
                    if due.is_empty() {
                        break;
                    }
                    claimed += due.len();
                    let keys: Vec<(i64, String)> = due
                        .iter()
                        .map(|d| (d.event_seq, d.endpoint.clone()))
                        .collect();
                    let results = deliver(due);
                    settle(conn, &keys, &results)?;
                }
                Ok(claimed)
            })
        })
        .await
    }

    /// Deliveries not yet made, and when the oldest of their events happened.
    pub async fn outbox_backlog(&self) -> Result<Backlog, StoreError> {
        self.run("outbox_backlog", |conn| {
            Ok(diesel::sql_query(
                "SELECT count(*) AS undelivered, min(e.occurred_at) AS oldest \
                 FROM event_deliveries d JOIN events e ON e.seq = d.event_seq \
                 WHERE d.state IN ('held', 'pending')",
            )
            .get_result(conn)?)
        })
        .await
    }

    /// Settles as `abandoned` the undelivered deliveries to endpoints not
    /// in `configured` (removed from the configuration), and the events
    /// that leaves with nothing to deliver, so retention purges them.
    /// Answers how many per endpoint: each row changes state once, so
    /// replicas starting together count each once.
    pub async fn abandon_unconfigured(
        &self,
        configured: Vec<String>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        #[derive(QueryableByName)]
        struct Abandoned {
            #[diesel(sql_type = Text)]
            endpoint: String,
            #[diesel(sql_type = BigInt)]
            count: i64,
        }
        self.run("abandon_unconfigured", move |conn| {
            // One statement: its sub-selects see the rows as they were, so
            // an event is settled when no configured endpoint still owes it.
            let rows: Vec<Abandoned> = diesel::sql_query(
                "WITH gone AS ( \
                   UPDATE event_deliveries SET state = 'abandoned', \
                     last_error = 'endpoint no longer configured' \
                   WHERE state IN ('held', 'pending') AND NOT (endpoint = ANY($1)) \
                   RETURNING event_seq, endpoint), \
                 settled AS ( \
                   UPDATE events e SET settled_at = now() \
                   WHERE e.seq IN (SELECT event_seq FROM gone) AND e.settled_at IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM event_deliveries d \
                       WHERE d.event_seq = e.seq AND d.state IN ('held', 'pending') \
                         AND d.endpoint = ANY($1)) \
                   RETURNING 1) \
                 SELECT endpoint, count(*) AS count FROM gone GROUP BY endpoint",
            )
            .bind::<Array<Text>, _>(&configured)
            .load(conn)?;
            Ok(rows.into_iter().map(|r| (r.endpoint, r.count)).collect())
        })
        .await
    }

    /// Purges events settled before `settled_before` (with their
    /// deliveries), `PURGE_BATCH` at a time.
    pub async fn purge_settled_events(
        &self,
        settled_before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.purge_in_batches("purge_settled_events", move |conn| {
            diesel::sql_query(
                "DELETE FROM events WHERE ctid = ANY(ARRAY( \
                   SELECT ctid FROM events WHERE settled_at < $1 \
                   ORDER BY settled_at LIMIT $2))",
            )
            .bind::<Timestamptz, _>(settled_before)
            .bind::<BigInt, _>(super::PURGE_BATCH)
            .execute(conn)
        })
        .await
    }
}

/// Held deliveries whose hold ended become pending: the process that
/// would have released them may have died, and they block their
/// identity's later events. They go out as they are (a login event
/// without its session id).
fn release_expired_holds(conn: &mut PgConnection, endpoints: &[String]) -> Result<(), StoreError> {
    let released = diesel::sql_query(
        "UPDATE event_deliveries SET state = 'pending' \
         WHERE state = 'held' AND next_attempt_at <= now() AND endpoint = ANY($1)",
    )
    .bind::<Array<Text>, _>(endpoints)
    .execute(conn)?;
    if released > 0 {
        tracing::info!(
            released,
            "held event deliveries released at the end of their hold"
        );
    }
    Ok(())
}

fn claim_due(
    conn: &mut PgConnection,
    endpoints: &[String],
    limit: i64,
) -> Result<Vec<DueDelivery>, StoreError> {
    // The due rows are locked first, then their events are read by primary
    // key: joined in one SELECT, the planner may walk `events` in `seq`
    // order from the start (a merge join) to reach the few due ones, a cost
    // that grows with every event kept for retention. "The identity's
    // oldest undelivered" is a `min` per row, which the queue index answers
    // in one descent; as a NOT EXISTS, the planner may rescan the whole
    // queue for each candidate.
    Ok(diesel::sql_query(
        "WITH due AS ( \
           SELECT d.event_seq, d.endpoint, d.attempts FROM event_deliveries d \
           WHERE d.state = 'pending' AND d.next_attempt_at <= now() \
             AND d.endpoint = ANY($1) \
             AND d.event_seq = (SELECT min(b.event_seq) FROM event_deliveries b \
               WHERE b.endpoint = d.endpoint AND b.identity_id = d.identity_id \
                 AND b.state IN ('held', 'pending')) \
           ORDER BY d.event_seq LIMIT $2 \
           FOR UPDATE OF d SKIP LOCKED) \
         SELECT due.event_seq, due.endpoint, due.attempts, e.id AS event_id, \
           e.occurred_at, e.payload \
         FROM due JOIN events e ON e.seq = due.event_seq \
         ORDER BY due.event_seq",
    )
    .bind::<Array<Text>, _>(endpoints)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// Saves what became of a round's deliveries: the delivered ones in one
/// statement (the usual case), the others one by one; then marks the
/// events that are done everywhere.
fn settle(
    conn: &mut PgConnection,
    keys: &[(i64, String)],
    results: &[DeliveryResult],
) -> Result<(), StoreError> {
    let (mut seqs, mut endpoints) = (Vec::new(), Vec::new());
    for ((seq, endpoint), result) in keys.iter().zip(results) {
        match result {
            DeliveryResult::Delivered => {
                seqs.push(*seq);
                endpoints.push(endpoint.clone());
            }
            DeliveryResult::Retry { error, retry_in } => {
                diesel::sql_query(
                    "UPDATE event_deliveries SET attempts = attempts + 1, last_error = $3, \
                       next_attempt_at = now() + $4 * interval '1 millisecond' \
                     WHERE event_seq = $1 AND endpoint = $2",
                )
                .bind::<BigInt, _>(seq)
                .bind::<Text, _>(endpoint)
                .bind::<Text, _>(error)
                .bind::<BigInt, _>(millis(*retry_in))
                .execute(conn)?;
            }
            DeliveryResult::GiveUp { error } => {
                diesel::sql_query(
                    "UPDATE event_deliveries SET state = 'failed', attempts = attempts + 1, \
                       last_error = $3 \
                     WHERE event_seq = $1 AND endpoint = $2",
                )
                .bind::<BigInt, _>(seq)
                .bind::<Text, _>(endpoint)
                .bind::<Text, _>(error)
                .execute(conn)?;
            }
        }
    }
    if !seqs.is_empty() {
        diesel::sql_query(
            "UPDATE event_deliveries d SET state = 'delivered', attempts = attempts + 1, \
               delivered_at = now(), last_error = NULL \
             FROM unnest($1::bigint[], $2::text[]) AS done (event_seq, endpoint) \
             WHERE d.event_seq = done.event_seq AND d.endpoint = done.endpoint",
        )
        .bind::<Array<BigInt>, _>(&seqs)
        .bind::<Array<Text>, _>(&endpoints)
        .execute(conn)?;
    }
    let touched: Vec<i64> = keys.iter().map(|(seq, _)| *seq).collect();
    diesel::sql_query(
        "UPDATE events e SET settled_at = now() \
         WHERE e.seq = ANY($1) AND e.settled_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM event_deliveries d \
             WHERE d.event_seq = e.seq AND d.state IN ('held', 'pending'))",
    )
    .bind::<Array<BigInt>, _>(&touched)
    .execute(conn)?;
    Ok(())
}
