//! Micro-benchmarks of the paths every message or request goes through.
//!
//! Run with `cargo bench --bench hot_paths`. Each group answers one question about cost:
//!
//! - `signature/*`: what a client or an HTTP API caller pays for authentication.
//!   - `verify_channel_auth`: the HMAC check of every `pusher:subscribe` to a private channel;
//!     a reconnect storm runs it once per socket per private channel.
//!   - `http_request`: normalising a realistic five-parameter query into the string to sign and
//!     checking its HMAC, which every HTTP API call (e.g. `POST /apps/{id}/events`) pays.
//!   - `body_md5`: hashing a 1 KB body, the other per-request cost of a signed publish.
//! - `frames/*`: what a publish costs before fan-out, and what fan-out costs per subscriber.
//!   - `envelope_broadcast`: serialising one broadcast frame around 200 bytes of data, paid once
//!     per publish.
//!   - `clone_frame_10k`: 10,000 clones of that frame, paid once per subscriber; each clone must
//!     be a reference-count bump, never a copy of the bytes.
//! - `namespace/*`: the in-memory subscription state.
//!   - `broadcast_10k`: queueing one frame to 10,000 subscribers of one channel, the fan-out
//!     loop itself. Receivers are drained outside the timed region so no queue ever fills (a
//!     full queue would close the connection and take the cheap failure path instead).
//!   - `channel_lookup`: broadcasting to a channel with one subscriber among 10,000 channels, so
//!     the figure is dominated by finding the channel (hashing its name, taking a shard lock);
//!     iterations walk through all the channels rather than hitting one hot entry.
//!   - `subscribe_unsubscribe`: one subscribe plus unsubscribe on a channel that already has
//!     1,000 subscribers, the churn cost of clients coming and going.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clarion::channels::handle::{ConnHandle, Receiver};
use clarion::channels::Namespace;
use clarion::protocol::frames;
use clarion::protocol::signature;
use clarion::protocol::socket_id::SocketId;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The app key and secret of the protocol's own test vectors (docs/protocol.md §4.2).
const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";

/// Outbound queue length of every benchmark connection, as a server would configure it.
const QUEUE: usize = 1024;

/// The event name of a typical Laravel Echo broadcast.
const EVENT: &str = "App\\Events\\OrderShipped";

/// HMAC and MD5 costs of authenticating clients and HTTP API requests.
fn signature_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("signature");

    // A private-channel subscribe, signed as an auth endpoint would sign it.
    let socket_id = "123456789.987654321";
    let channel = "private-orders.42";
    let auth = format!(
        "{KEY}:{}",
        signature::sign(SECRET, &format!("{socket_id}:{channel}"))
    );
    assert!(
        signature::verify_channel_auth(KEY, SECRET, socket_id, channel, None, &auth),
        "the benchmark's channel auth must be valid, or it measures the rejection path"
    );
    group.bench_function("verify_channel_auth", |b| {
        b.iter(|| {
            signature::verify_channel_auth(
                black_box(KEY),
                black_box(SECRET),
                black_box(socket_id),
                black_box(channel),
                None,
                black_box(&auth),
            )
        })
    });

    // The five parameters every signed `POST /apps/{id}/events` carries, in the order the
    // server SDKs send them.
    let body = br#"{"name":"App\\Events\\OrderShipped","channels":["private-orders.42"],"data":"{\"order_id\":42}"}"#;
    let method = "POST";
    let path = "/apps/3/events";
    let mut query = vec![
        ("auth_key".to_string(), KEY.to_string()),
        ("auth_timestamp".to_string(), "1353088179".to_string()),
        ("auth_version".to_string(), "1.0".to_string()),
        ("body_md5".to_string(), signature::body_md5(body)),
    ];
    let auth_signature = signature::sign(
        SECRET,
        &signature::http_string_to_sign(method, path, &query),
    );
    query.push(("auth_signature".to_string(), auth_signature.clone()));
    group.bench_function("http_request", |b| {
        b.iter(|| {
            let to_sign =
                signature::http_string_to_sign(black_box(method), black_box(path), &query);
            let ok = signature::verify_hex(SECRET, &[to_sign.as_bytes()], &auth_signature);
            assert!(ok, "the benchmark's HTTP signature must be valid");
            ok
        })
    });

    let body_1k: Vec<u8> = (0..1024u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i % 36) as usize])
        .collect();
    group.throughput(Throughput::Bytes(body_1k.len() as u64));
    group.bench_function("body_md5", |b| {
        b.iter(|| signature::body_md5(black_box(&body_1k)))
    });
    group.finish();
}

/// A double-encoded JSON `data` field of exactly 200 bytes, as the HTTP API forwards it.
fn data_200() -> String {
    let encode = |note: &str| {
        let inner = format!(r#"{{"order_id":42,"status":"shipped","note":"{note}"}}"#);
        serde_json::to_string(&inner).expect("a string always serialises")
    };
    let base = encode("").len();
    let data = encode(&"x".repeat(200 - base));
    assert_eq!(data.len(), 200, "padding must give a 200-byte data field");
    data
}

/// The per-publish serialisation cost and the per-subscriber clone cost.
fn frame_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("frames");
    let data = data_200();
    group.bench_function("envelope_broadcast", |b| {
        b.iter(|| {
            frames::envelope(
                black_box(EVENT),
                black_box(Some("private-orders.42")),
                black_box(Some(data.as_str())),
                None,
            )
        })
    });

    let frame = frames::envelope(EVENT, Some("private-orders.42"), Some(&data), None);
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("clone_frame_10k", |b| {
        b.iter(|| {
            for _ in 0..10_000 {
                // Clone and drop: one increment and one decrement of the shared count.
                black_box(black_box(&frame).clone());
            }
        })
    });
    group.finish();
}

/// Subscribes `count` fresh connections (ids starting at `first`) to `channel` and returns
/// their receivers, which must stay alive or every send takes the "connection gone" path.
fn subscribe_many(ns: &Namespace, channel: &str, first: u64, count: u64) -> Vec<Receiver> {
    (first..first + count)
        .map(|i| {
            let (handle, rx) = ConnHandle::new(SocketId(i, i), QUEUE);
            ns.subscribe(channel, &Arc::new(handle), None, 0)
                .expect("a public subscribe has no member limit");
            rx
        })
        .collect()
}

/// Empties every queue and returns how many frames were waiting.
fn drain(receivers: &mut [Receiver]) -> usize {
    let mut frames = 0;
    for rx in receivers {
        while rx.try_recv().is_some() {
            frames += 1;
        }
    }
    frames
}

/// Fan-out, channel lookup and subscription churn in one app's `Namespace`.
fn namespace_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("namespace");
    let data = data_200();

    // Lookup: 10,000 channels of one subscriber each. Iterations walk through the channels so
    // the figure is not that of one entry sitting in cache, and they are timed in runs (never
    // wrapping, so each queue gets at most one frame per run) so that reading the clock is not
    // part of a ~100 ns figure.
    let ns = Namespace::default();
    let names: Vec<String> = (0..10_000).map(|i| format!("private-user.{i}")).collect();
    let mut receivers: Vec<Receiver> = names
        .iter()
        .zip(1..)
        .flat_map(|(name, id)| subscribe_many(&ns, name, id, 1))
        .collect();
    let frame = frames::envelope(EVENT, Some("private-user"), Some(&data), None);
    group.bench_function("channel_lookup", |b| {
        let mut next = 0;
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let run = (names.len() - next).min(usize::try_from(left).unwrap_or(usize::MAX));
                let targets = &names[next..next + run];
                let start = Instant::now();
                let mut sent = 0;
                for name in targets {
                    sent += ns.broadcast(black_box(name), black_box(&frame), None);
                }
                timed += start.elapsed();
                assert_eq!(sent, run, "each channel has exactly one subscriber");
                let queued = drain(&mut receivers[next..next + run]);
                assert_eq!(queued, run, "one frame per channel");
                next = (next + run) % names.len();
                left -= run as u64;
            }
            timed
        })
    });
    drop(receivers);

    // Churn: one connection joins and leaves a channel that keeps 1,000 other subscribers, so
    // the channel is never vacated and never re-created.
    let ns = Namespace::default();
    let channel = "lobby";
    let _receivers = subscribe_many(&ns, channel, 1, 1_000);
    let (handle, _rx) = ConnHandle::new(SocketId(1_000_000, 1_000_000), QUEUE);
    let handle = Arc::new(handle);
    group.bench_function("subscribe_unsubscribe", |b| {
        b.iter(|| {
            let joined = ns
                .subscribe(black_box(channel), &handle, None, 0)
                .expect("a public subscribe has no member limit");
            let left = ns.unsubscribe(black_box(channel), handle.socket_id);
            assert!(!joined.occupied && left.was_subscribed && !left.vacated);
            (joined, left)
        })
    });

    // Fan-out: one channel, 10,000 subscribers. Only `broadcast` is timed; the queues are
    // drained after each call, outside the timer.
    let channel = "private-orders";
    let frame = frames::envelope(EVENT, Some(channel), Some(&data), None);
    let ns = Namespace::default();
    let mut receivers = subscribe_many(&ns, channel, 1, 10_000);
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("broadcast_10k", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let sent = ns.broadcast(black_box(channel), black_box(&frame), None);
                timed += start.elapsed();
                assert_eq!(sent, 10_000, "every subscriber must accept the frame");
                assert_eq!(drain(&mut receivers), 10_000, "one frame per subscriber");
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(
    hot_paths,
    signature_benches,
    frame_benches,
    namespace_benches
);
criterion_main!(hot_paths);
