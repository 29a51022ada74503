//! The SQLite side of the durable queues: SQS queues and their messages, the async event
//! queue's group-committing writer, event invoke configs and undelivered records.
//!
//! Accepted `Event` invocations and their deletions go through [`EventWriter`]: one thread with
//! its own connection that commits every request waiting at that moment in one transaction,
//! so many concurrent accepts share one `fsync` instead of queueing for one each.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;

use lamina_types::asynchronous::{EventInvokeConfig, QueueKey};
use lamina_types::names::FunctionKey;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::{
    AsyncEvent, HandleOutcome, NewMessage, QueueCounts, QueueRecord, ReceiveOptions,
    ReceivedMessage, StoreError, Undelivered,
};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;

/// One write of the event writer.
#[derive(Debug)]
enum EventWrite {
    Insert(AsyncEvent),
    Delete(String),
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// The group-committing writer of the `async_events` table.
#[derive(Debug, Clone)]
pub(crate) struct EventWriter {
    tx: mpsc::Sender<(EventWrite, Reply)>,
}

impl EventWriter {
    /// Open a second connection to `path` and start the writer thread.
    pub(crate) fn start(path: &Path) -> Result<EventWriter, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        let (tx, rx) = mpsc::channel::<(EventWrite, Reply)>();
        std::thread::Builder::new()
            .name("lamina-event-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| StoreError::Task(format!("starting the event writer: {e}")))?;
        Ok(EventWriter { tx })
    }

    async fn submit(&self, write: EventWrite) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((write, reply))
            .map_err(|_| StoreError::Task("the event writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Task("the event writer stopped".into()))?
    }

    pub(crate) async fn insert(&self, event: AsyncEvent) -> Result<(), StoreError> {
        self.submit(EventWrite::Insert(event)).await
    }

    pub(crate) async fn delete(&self, request_id: String) -> Result<(), StoreError> {
        self.submit(EventWrite::Delete(request_id)).await
    }
}

fn write_loop(mut conn: Connection, rx: mpsc::Receiver<(EventWrite, Reply)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut results: Vec<Result<(), StoreError>> = Vec::with_capacity(batch.len());
        let committed = (|| -> Result<(), rusqlite::Error> {
            let tx = conn.transaction()?;
            for (write, _) in &batch {
                // A failed statement (a duplicate request id) rolls back only itself.
                results.push(apply(&tx, write).map_err(StoreError::from));
            }
            tx.commit()
        })();
        match committed {
            Ok(()) => {
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Task(format!(
                        "committing async events: {message}"
                    ))));
                }
            }
        }
    }
}

fn apply(conn: &Connection, write: &EventWrite) -> Result<(), rusqlite::Error> {
    match write {
        EventWrite::Insert(e) => {
            conn.prepare_cached(
                "INSERT INTO async_events (request_id, account, region, name, qualifier, payload, enqueued_at, attempts, due_at, throttles) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                e.request_id,
                e.key.account,
                e.key.region,
                e.key.name,
                e.qualifier,
                e.payload,
                e.enqueued_at_ms,
                e.attempts,
                e.due_at_ms,
                e.throttles
            ])?;
        }
        EventWrite::Delete(id) => {
            conn.prepare_cached("DELETE FROM async_events WHERE request_id=?1")?
                .execute(params![id])?;
        }
    }
    Ok(())
}

pub(crate) fn pending_events(conn: &Connection) -> Result<Vec<AsyncEvent>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT request_id, account, region, name, qualifier, payload, enqueued_at, attempts, due_at, throttles \
         FROM async_events ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AsyncEvent {
            request_id: r.get(0)?,
            key: FunctionKey {
                account: r.get(1)?,
                region: r.get(2)?,
                name: r.get(3)?,
            },
            qualifier: r.get(4)?,
            payload: r.get(5)?,
            enqueued_at_ms: r.get(6)?,
            attempts: r.get(7)?,
            due_at_ms: r.get(8)?,
            throttles: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(crate) fn reschedule_event(
    conn: &Connection,
    request_id: &str,
    attempts: u32,
    throttles: u32,
    due_at_ms: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE async_events SET attempts=?2, throttles=?3, due_at=?4 WHERE request_id=?1",
        params![request_id, attempts, throttles, due_at_ms],
    )?;
    Ok(())
}

pub(crate) fn put_undelivered(conn: &Connection, u: &Undelivered) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO undelivered (request_id, destination, record, error) VALUES (?1, ?2, ?3, ?4)",
        params![u.request_id, u.destination, u.record, u.error],
    )?;
    Ok(())
}

pub(crate) fn list_undelivered(conn: &Connection) -> Result<Vec<Undelivered>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT request_id, destination, record, error FROM undelivered ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok(Undelivered {
            request_id: r.get(0)?,
            destination: r.get(1)?,
            record: r.get(2)?,
            error: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

// ---------------------------------------------------------------------------------------------
// Event invoke configs.

fn decode_event_config(
    key: &FunctionKey,
    qualifier: &str,
    text: &str,
) -> Result<EventInvokeConfig, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        key: key.qualified_arn(qualifier),
        source,
    })
}

pub(crate) fn put_event_config(
    conn: &mut Connection,
    key: &FunctionKey,
    qualifier: &str,
    config: &EventInvokeConfig,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let exists = tx
        .query_row(
            "SELECT 1 FROM functions WHERE account=?1 AND region=?2 AND name=?3",
            params![key.account, key.region, key.name],
            |_| Ok(()),
        )
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::NotFound(key.arn()));
    }
    tx.execute(
        "INSERT INTO event_configs (account, region, name, qualifier, config) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (account, region, name, qualifier) DO UPDATE SET config=excluded.config",
        params![
            key.account,
            key.region,
            key.name,
            qualifier,
            serde_json::to_string(config).unwrap_or_default()
        ],
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn get_event_config(
    conn: &Connection,
    key: &FunctionKey,
    qualifier: &str,
) -> Result<Option<EventInvokeConfig>, StoreError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT config FROM event_configs WHERE account=?1 AND region=?2 AND name=?3 AND qualifier=?4",
            params![key.account, key.region, key.name, qualifier],
            |r| r.get(0),
        )
        .optional()?;
    text.map(|t| decode_event_config(key, qualifier, &t))
        .transpose()
}

pub(crate) fn delete_event_config(
    conn: &Connection,
    key: &FunctionKey,
    qualifier: &str,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "DELETE FROM event_configs WHERE account=?1 AND region=?2 AND name=?3 AND qualifier=?4",
        params![key.account, key.region, key.name, qualifier],
    )?;
    Ok(n > 0)
}

pub(crate) fn list_event_configs(
    conn: &Connection,
    key: &FunctionKey,
) -> Result<Vec<(String, EventInvokeConfig)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT qualifier, config FROM event_configs WHERE account=?1 AND region=?2 AND name=?3 ORDER BY qualifier",
    )?;
    let rows = stmt.query_map(params![key.account, key.region, key.name], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (q, text) = row?;
        let c = decode_event_config(key, &q, &text)?;
        out.push((q, c));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Queues.

fn queue_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(QueueKey, String, i64, i64)> {
    Ok((
        QueueKey {
            account: r.get(0)?,
            region: r.get(1)?,
            name: r.get(2)?,
        },
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn decode_queue(
    (key, attributes, created_at_s, modified_at_s): (QueueKey, String, i64, i64),
) -> Result<QueueRecord, StoreError> {
    let attributes = serde_json::from_str(&attributes).map_err(|source| StoreError::Corrupt {
        key: key.arn(),
        source,
    })?;
    Ok(QueueRecord {
        key,
        attributes,
        created_at_s,
        modified_at_s,
    })
}

pub(crate) fn read_queue(
    conn: &Connection,
    key: &QueueKey,
) -> Result<Option<QueueRecord>, StoreError> {
    conn.query_row(
        "SELECT account, region, name, attributes, created_at, modified_at FROM queues WHERE account=?1 AND region=?2 AND name=?3",
        params![key.account, key.region, key.name],
        queue_row,
    )
    .optional()?
    .map(decode_queue)
    .transpose()
}

fn ensure_queue(conn: &Connection, key: &QueueKey) -> Result<(), StoreError> {
    conn.query_row(
        "SELECT 1 FROM queues WHERE account=?1 AND region=?2 AND name=?3",
        params![key.account, key.region, key.name],
        |_| Ok(()),
    )
    .optional()?
    .ok_or_else(|| StoreError::QueueNotFound(key.arn()))
}

pub(crate) fn create_queue(
    conn: &mut Connection,
    queue: &QueueRecord,
) -> Result<(QueueRecord, bool), StoreError> {
    let tx = conn.transaction()?;
    if let Some(existing) = read_queue(&tx, &queue.key)? {
        return Ok((existing, false));
    }
    let k = &queue.key;
    tx.execute(
        "INSERT INTO queues (account, region, name, attributes, created_at, modified_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            k.account,
            k.region,
            k.name,
            serde_json::to_string(&queue.attributes).unwrap_or_else(|_| "{}".into()),
            queue.created_at_s,
            queue.modified_at_s
        ],
    )?;
    tx.commit()?;
    Ok((queue.clone(), true))
}

pub(crate) fn list_queues(
    conn: &Connection,
    account: &str,
    region: &str,
    prefix: &str,
) -> Result<Vec<QueueRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT account, region, name, attributes, created_at, modified_at FROM queues \
         WHERE account=?1 AND region=?2 AND substr(name, 1, length(?3))=?3 ORDER BY name",
    )?;
    let rows = stmt.query_map(params![account, region, prefix], queue_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(decode_queue(row?)?);
    }
    Ok(out)
}

pub(crate) fn set_queue_attributes(
    conn: &mut Connection,
    key: &QueueKey,
    attributes: &BTreeMap<String, String>,
    now_s: i64,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let mut q = read_queue(&tx, key)?.ok_or_else(|| StoreError::QueueNotFound(key.arn()))?;
    q.attributes
        .extend(attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
    q.attributes.retain(|_, v| !v.is_empty());
    tx.execute(
        "UPDATE queues SET attributes=?4, modified_at=?5 WHERE account=?1 AND region=?2 AND name=?3",
        params![
            key.account,
            key.region,
            key.name,
            serde_json::to_string(&q.attributes).unwrap_or_else(|_| "{}".into()),
            now_s
        ],
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn delete_queue(conn: &Connection, key: &QueueKey) -> Result<bool, StoreError> {
    let n = conn.execute(
        "DELETE FROM queues WHERE account=?1 AND region=?2 AND name=?3",
        params![key.account, key.region, key.name],
    )?;
    Ok(n > 0)
}

pub(crate) fn purge_queue(conn: &mut Connection, key: &QueueKey) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    ensure_queue(&tx, key)?;
    tx.execute(
        "DELETE FROM queue_messages WHERE account=?1 AND region=?2 AND queue=?3",
        params![key.account, key.region, key.name],
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn queue_counts(
    conn: &Connection,
    key: &QueueKey,
    now_ms: i64,
) -> Result<QueueCounts, StoreError> {
    ensure_queue(conn, key)?;
    let (visible, in_flight, delayed): (i64, i64, i64) = conn.query_row(
        "SELECT COALESCE(SUM(visible_at <= ?4), 0), \
                COALESCE(SUM(visible_at > ?4 AND receive_count > 0), 0), \
                COALESCE(SUM(visible_at > ?4 AND receive_count = 0), 0) \
         FROM queue_messages WHERE account=?1 AND region=?2 AND queue=?3",
        params![key.account, key.region, key.name, now_ms],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(QueueCounts {
        visible: visible as u64,
        in_flight: in_flight as u64,
        delayed: delayed as u64,
    })
}

pub(crate) fn send_messages(
    conn: &mut Connection,
    key: &QueueKey,
    messages: &[NewMessage],
    now_ms: i64,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    ensure_queue(&tx, key)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO queue_messages (account, region, queue, message_id, body, attributes, sent_at, visible_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for m in messages {
            stmt.execute(params![
                key.account,
                key.region,
                key.name,
                m.message_id,
                m.body,
                m.attributes,
                now_ms,
                now_ms + m.delay_ms.max(0)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

type MessageRow = (i64, String, String, String, i64, u32, Option<i64>);

pub(crate) fn receive_messages(
    conn: &mut Connection,
    key: &QueueKey,
    opts: &ReceiveOptions,
) -> Result<Vec<ReceivedMessage>, StoreError> {
    let tx = conn.transaction()?;
    ensure_queue(&tx, key)?;
    let now = opts.now_ms;
    tx.execute(
        "DELETE FROM queue_messages WHERE account=?1 AND region=?2 AND queue=?3 AND sent_at < ?4",
        params![
            key.account,
            key.region,
            key.name,
            now.saturating_sub(opts.retention_ms)
        ],
    )?;
    let redrive = match &opts.redrive {
        Some((dlq, max)) if dlq != key && read_queue(&tx, dlq)?.is_some() => Some((dlq, *max)),
        _ => None,
    };
    let mut out = Vec::new();
    'fill: while out.len() < opts.max {
        let rows: Vec<MessageRow> = {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, message_id, body, attributes, sent_at, receive_count, first_received_at FROM queue_messages \
                 WHERE account=?1 AND region=?2 AND queue=?3 AND visible_at <= ?4 ORDER BY seq LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![
                    key.account,
                    key.region,
                    key.name,
                    now,
                    (opts.max - out.len()) as i64
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )?;
            rows.collect::<Result<_, _>>()?
        };
        if rows.is_empty() {
            break 'fill;
        }
        for (seq, message_id, body, attributes, sent_at, count, first) in rows {
            if let Some((dlq, max)) = redrive {
                if count >= max {
                    tx.execute(
                        "UPDATE queue_messages SET account=?2, region=?3, queue=?4, receive_count=0, \
                         first_received_at=NULL, receipt=NULL, visible_at=?5 WHERE seq=?1",
                        params![seq, dlq.account, dlq.region, dlq.name, now],
                    )?;
                    continue;
                }
            }
            let token = uuid::Uuid::new_v4().simple().to_string();
            let first = first.unwrap_or(now);
            tx.execute(
                "UPDATE queue_messages SET receive_count=?2, first_received_at=?3, receipt=?4, visible_at=?5 WHERE seq=?1",
                params![seq, count + 1, first, token, now + opts.visibility_ms.max(0)],
            )?;
            out.push(ReceivedMessage {
                message_id,
                receipt_handle: format!("{seq}.{token}"),
                body,
                attributes,
                sent_at_ms: sent_at,
                first_received_at_ms: first,
                receive_count: count + 1,
            });
        }
    }
    tx.commit()?;
    Ok(out)
}

/// `{seq}.{token}` → its parts.
fn parse_handle(handle: &str) -> Option<(i64, &str)> {
    let (seq, token) = handle.split_once('.')?;
    let seq = seq.parse().ok()?;
    (token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit())).then_some((seq, token))
}

pub(crate) fn delete_message(
    conn: &mut Connection,
    key: &QueueKey,
    handle: &str,
) -> Result<HandleOutcome, StoreError> {
    let tx = conn.transaction()?;
    ensure_queue(&tx, key)?;
    let Some((seq, _token)) = parse_handle(handle) else {
        return Ok(HandleOutcome::Invalid);
    };
    tx.execute(
        "DELETE FROM queue_messages WHERE seq=?1 AND account=?2 AND region=?3 AND queue=?4",
        params![seq, key.account, key.region, key.name],
    )?;
    tx.commit()?;
    // Deleting a message that is already gone succeeds, as in SQS.
    Ok(HandleOutcome::Done)
}

pub(crate) fn change_visibility(
    conn: &mut Connection,
    key: &QueueKey,
    handle: &str,
    visibility_ms: i64,
    now_ms: i64,
) -> Result<HandleOutcome, StoreError> {
    let tx = conn.transaction()?;
    ensure_queue(&tx, key)?;
    let Some((seq, token)) = parse_handle(handle) else {
        return Ok(HandleOutcome::Invalid);
    };
    let row: Option<(Option<String>, i64)> = tx
        .query_row(
            "SELECT receipt, visible_at FROM queue_messages WHERE seq=?1 AND account=?2 AND region=?3 AND queue=?4",
            params![seq, key.account, key.region, key.name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let outcome = match row {
        None => HandleOutcome::Invalid,
        Some((receipt, visible_at)) if receipt.as_deref() == Some(token) && visible_at > now_ms => {
            tx.execute(
                "UPDATE queue_messages SET visible_at=?2 WHERE seq=?1",
                params![seq, now_ms + visibility_ms.max(0)],
            )?;
            HandleOutcome::Done
        }
        Some(_) => HandleOutcome::NotInFlight,
    };
    tx.commit()?;
    Ok(outcome)
}
