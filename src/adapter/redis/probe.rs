//! The first contact with Redis, at start: whatever Redis will refuse for as long as the
//! settings stay as they are (a wrong password, a certificate that does not chain to the CA, an
//! ACL user without rights to Clarion's keys, pub/sub channel or scripts) stops the node with
//! a message naming the problem, instead of a node that starts and then fails every call. A
//! Redis that does not answer is not such a problem: the node serves locally until it does
//! (module doc of `redis`).

use std::time::Duration;

use redis::{ErrorKind, RedisError};

use super::keys::Keys;
use crate::net::redis_servers::{ClusterSeeds, Sentinels};

/// How long the probe waits for each step before calling Redis unreachable.
const STEP: Duration = Duration::from_secs(3);

/// What the probe found.
#[derive(Debug, PartialEq)]
pub enum Probe {
    /// Connected, and every kind of command Clarion sends was allowed.
    Ready,
    /// No answer (down, not listening, timed out): start anyway and keep trying.
    Unreachable(String),
    /// Redis answered with a refusal that will not change by itself.
    Refused(String),
}

/// Connects once and tries each kind of access Clarion needs, without changing anything: a
/// key read under the prefix, a transaction opened and discarded, the bus channel (subscribed, then dropped) and a script that
/// reads `INFO server` as the history scripts do.
pub async fn run(client: &redis::Client, keys: &Keys) -> Probe {
    let mut conn = match step(client.get_multiplexed_async_connection()).await {
        Ok(c) => c,
        Err(p) => return p,
    };
    let key = format!("{}:probe", keys.prefix);
    let mut exists = redis::cmd("EXISTS");
    exists.arg(&key);
    if let Err(p) = step(exists.query_async::<i64>(&mut conn)).await {
        return explain(p, &format!("keys ~{}:*", keys.prefix));
    }
    // Liveness refreshes in a transaction; MULTI alone is enough to learn whether it is
    // allowed, and DISCARD leaves the connection as it was.
    let multi = redis::cmd("MULTI");
    if let Err(p) = step(multi.query_async::<()>(&mut conn)).await {
        return explain(p, "transactions (MULTI, EXEC)");
    }
    let discard = redis::cmd("DISCARD");
    if let Err(p) = step(discard.query_async::<()>(&mut conn)).await {
        return explain(p, "transactions (MULTI, EXEC, DISCARD)");
    }
    if let Err(p) = step(script().invoke_async::<_, i64>(&mut conn)).await {
        return explain(p, SCRIPTS);
    }
    let bus = keys.shared_bus();
    let subscribed = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&bus).await
    };
    if let Err(p) = step(subscribed).await {
        return explain(p, &format!("the pub/sub channel &{bus}"));
    }
    Probe::Ready
}

/// The same accesses on a Redis Cluster, each routed to the master of its key's slot: a key
/// read, a script that reads `INFO server` and `TIME`, and a publish on a sharded channel under
/// the prefix (nobody listens to it). Seeds that do not answer are named, masked.
pub async fn cluster(seeds: &ClusterSeeds, keys: &Keys) -> Probe {
    let client = match seeds.client(None, STEP) {
        Ok(c) => c,
        Err(e) => return Probe::Refused(e.to_string()),
    };
    let found = async {
        let mut conn = step(client.get_async_connection())
            .await
            .map_err(|p| match p {
                Probe::Unreachable(why) => Probe::Unreachable(format!(
                    "no node of redis_cluster_nodes ({}) answered: {why}",
                    seeds.shown.join(", ")
                )),
                other => other,
            })?;
        let mut exists = redis::cmd("EXISTS");
        exists.arg(format!("{}:probe", keys.prefix));
        step(exists.query_async::<i64>(&mut conn))
            .await
            .map_err(|p| explain(p, &format!("keys ~{}:*", keys.prefix)))?;
        step(script().invoke_async::<_, i64>(&mut conn))
            .await
            .map_err(|p| explain(p, SCRIPTS))?;
        let channel = format!("{}:probe", keys.prefix);
        let mut publish = redis::cmd("SPUBLISH");
        publish.arg(&channel).arg("");
        step(publish.query_async::<i64>(&mut conn))
            .await
            .map_err(|p| explain(p, &format!("the sharded pub/sub channels &{channel}")))?;
        Ok::<_, Probe>(())
    };
    match found.await {
        Ok(()) => Probe::Ready,
        Err(Probe::Refused(why)) => Probe::Refused(why.replace("redis_url", "redis_cluster_nodes")),
        Err(p) => p,
    }
}

/// One step with a timeout, its error classified.
async fn step<T>(f: impl std::future::Future<Output = Result<T, RedisError>>) -> Result<T, Probe> {
    match tokio::time::timeout(STEP, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(Probe::Unreachable(format!(
            "no answer within {} s",
            STEP.as_secs()
        ))),
    }
}

/// What the scripts need, for a refusal.
const SCRIPTS: &str = "scripts (EVAL, EVALSHA) that call INFO, TIME, HSET, HGET and the other commands of the ACL in docs/cluster.md";

/// A script that reads what the adapter's scripts read beyond keys: `INFO server`, `TIME`.
fn script() -> redis::Script {
    redis::Script::new("return string.len(redis.call('INFO', 'server')) + #redis.call('TIME')")
}

/// A refusal named for what it forbids.
fn explain(p: Probe, what: &str) -> Probe {
    match p {
        Probe::Refused(e) if e.starts_with("NOPERM") => Probe::Refused(format!(
            "{e}: the Redis user in redis_url may not use {what} (docs/cluster.md lists the ACL Clarion needs)"
        )),
        other => other,
    }
}

/// Which errors will repeat on every try. The error's text comes from Redis or from TLS and
/// never contains the URL, so the password cannot leak through it.
fn classify(e: &RedisError) -> Probe {
    let text = e.to_string();
    let code = e.code().unwrap_or("");
    if code == "NOPERM" || text.contains("NOPERM") {
        return Probe::Refused(format!("NOPERM ({text})"));
    }
    if e.kind() == ErrorKind::AuthenticationFailed
        || code == "WRONGPASS"
        || code == "NOAUTH"
        || text.contains("WRONGPASS")
    {
        return Probe::Refused(format!(
            "authentication failed: check the user and password in redis_url ({text})"
        ));
    }
    // A TLS alert from Redis means it refused this node's certificate (or its absence).
    if text.contains("received fatal alert") {
        return Probe::Refused(format!(
            "TLS: the Redis server refused this node's client certificate; check redis_tls_cert_file and redis_tls_key_file ({text})"
        ));
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") || lower.contains("tls") {
        return Probe::Refused(format!(
            "TLS: the Redis server's certificate was not accepted; check redis_tls_ca_file (or the system trust store) and the host name in redis_url ({text})"
        ));
    }
    Probe::Unreachable(text)
}

/// Why the sentinels named no usable master. The first sentinel that answers says whether it
/// monitors the name at all: if not, the setting is wrong and stays wrong; if it does, its
/// master is down or failing over, which passes.
pub async fn sentinel_problem(sentinels: &Sentinels, e: &RedisError) -> Probe {
    for client in sentinels.each_sentinel().into_iter().flatten() {
        let asked = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&sentinels.master)
                .query_async::<Option<(String, u16)>>(&mut conn)
                .await
        };
        match step(asked).await {
            Ok(None) => {
                return Probe::Refused(format!(
                    "redis_sentinel_master: the sentinels monitor no master named {:?}",
                    sentinels.master
                ))
            }
            Ok(Some((host, port))) => {
                return Probe::Unreachable(format!(
                "the sentinels name {host}:{port} as master {:?}, and it is not usable yet ({e})",
                sentinels.master
            ))
            }
            Err(Probe::Refused(why)) => return Probe::Refused(format!("a sentinel: {why}")),
            Err(_) => continue,
        }
    }
    Probe::Unreachable(format!("no sentinel in redis_sentinels answered ({e})"))
}
