#!/usr/bin/env python3
"""What interest-based fan-out means at 100 nodes and 1,000,000 connections: a model whose
per-operation costs are measured here, applied to a marketplace-shaped load. Prints a Markdown
table; docs/cluster.md quotes it.

    benches/redis_pubsub_cost.sh          # prints "fit: A µs per PUBLISH + B µs per receiving connection"
    benches/cluster_model.py A B

A and B are Redis's CPU per PUBLISH and per receiving connection (each Clarion node is one
receiving connection per subscribed bus channel).
"""
import sys

# Measured: Redis `used_memory` growth per subscription (100,000 channels named like
# `bench:{app:bench}:ch:private-user.N`, one connection: 235 B each; two more connections
# on the same channels: 184 B each on average). docs/cluster.md, "At 100 nodes".
BYTES_PER_SUBSCRIPTION = 235

# The load: 1,000,000 connections on 100 nodes (10,000 each, spread by the load balancer).
NODES = 100
CONNECTIONS = 1_000_000
# Each connection watches its user's private channel (one tab per user, so one node holds it)
# and the user gets an event every 100 s: 10,000 private events/s over the cluster.
PRIVATE_EVENTS = CONNECTIONS / 100
# 20,000 booking channels, each watched by a client and a provider (2 connections, on random
# nodes), 1 event per 10 s each: 2,000 events/s.
BOOKINGS = 20_000
BOOKING_WATCHERS = 2
BOOKING_EVENTS = BOOKINGS / 10
# One announcements channel every connection watches, 1 event/s.
BROADCAST_EVENTS = 1.0
# Sessions last 10 minutes on average: connections (and their private subscriptions) churn.
SESSION_SECONDS = 600


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = float(sys.argv[1]), float(sys.argv[2])
    per_node = CONNECTIONS / NODES
    events = PRIVATE_EVENTS + BOOKING_EVENTS + BROADCAST_EVENTS
    # Probability that a node holds at least one of a booking's watchers.
    p_booking = 1 - (1 - 1 / NODES) ** BOOKING_WATCHERS
    after_node = PRIVATE_EVENTS / NODES + BOOKING_EVENTS * p_booking + BROADCAST_EVENTS
    before_node = events
    before_deliveries = events * NODES
    after_deliveries = (
        PRIVATE_EVENTS + BOOKING_EVENTS * NODES * p_booking + BROADCAST_EVENTS * NODES
    )
    before_cpu = events * a + before_deliveries * b
    after_cpu = events * a + after_deliveries * b
    # Subscriptions: each node holds its users' private channels, its bookings, announcements.
    bookings_per_node = BOOKINGS * p_booking
    subs_per_node = per_node + bookings_per_node + 1
    subs_total = subs_per_node * NODES
    churn = CONNECTIONS / SESSION_SECONDS  # private channels joined (and left) per second
    print(f"Redis CPU per published message {a:.2f} µs + {b:.3f} µs per receiving node.\n")
    print("| 100 nodes, 1,000,000 connections | before (every node hears everything) | after (interest) |")
    print("|---|---|---|")
    print(f"| events published / s (cluster) | {events:,.0f} | {events:,.0f} |")
    print(f"| bus messages received per node / s | {before_node:,.0f} | {after_node:,.0f} |")
    print(f"| messages Redis sends / s | {before_deliveries:,.0f} | {after_deliveries:,.0f} |")
    print(f"| Redis CPU (cores, one thread each) | {before_cpu / 1e6:.2f} | {after_cpu / 1e6:.3f} |")
    print(f"| subscriptions held in Redis | {NODES} (one channel per node) | {subs_total:,.0f} |")
    print(f"| Redis memory for them | ~0 | {subs_total * BYTES_PER_SUBSCRIPTION / 2**20:,.0f} MiB |")
    print(f"| SUBSCRIBE + UNSUBSCRIBE / s (session churn) | 0 | {2 * churn:,.0f} |")


if __name__ == "__main__":
    main()
