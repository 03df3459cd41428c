"""Pysher (a Python Pusher client speaking protocol 6) against the server under test, with events
triggered and private channels authorized by the official Pusher Python SDK.

Reads PT_HOST, PT_PORT, PT_APP_ID, PT_APP_KEY, PT_APP_SECRET. Prints one line per check and
exits non-zero on the first failure.
"""
import json
import logging
import os
import queue
import sys
import threading
import time
import traceback
import uuid

import pusher
import pysher

HOST = os.environ.get("PT_HOST", "127.0.0.1")
PORT = int(os.environ.get("PT_PORT", "6001"))
APP_ID = os.environ.get("PT_APP_ID", "123456")
KEY = os.environ.get("PT_APP_KEY", "pt-key")
SECRET = os.environ.get("PT_APP_SECRET", "pt-secret")

RUN = uuid.uuid4().hex[:8]
TIMEOUT = 5.0

sdk = pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET, host=HOST, port=PORT, ssl=False, timeout=5)

clients = []


def ch(name):
    return "%s-%s" % (name, RUN)


class Inbox:
    """Every channel frame a Pysher connection receives, recorded before Pysher dispatches it.

    Pysher sends pusher:subscribe before it registers the Channel object, and drops frames for
    channels it does not know yet; against a fast local server subscription_succeeded can arrive
    in between. Recording at the connection level sees it anyway.
    """

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def put(self, channel, event, data):
        with self.cond:
            self.items.append((channel, event, data))
            self.cond.notify_all()

    def take(self, channel, events, timeout=TIMEOUT):
        """Removes and returns (event, data) of the first frame on channel with one of events."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, (c, e, d) in enumerate(self.items):
                    if c == channel and e in events:
                        del self.items[i]
                        return e, d
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s on %s within %.0fs" % ("/".join(events), channel, timeout))
                self.cond.wait(left)


def new_client(**kwargs):
    """A Pysher client connected to the server, with an inbox and a queue of connection errors."""
    client = pysher.Pusher(
        KEY, custom_host=HOST, port=PORT, secure=False, log_level=logging.WARNING, reconnect_interval=1, **kwargs
    )
    clients.append(client)
    inbox = Inbox()
    dispatch = client.connection.event_handler

    def record(event, data, channel):
        inbox.put(channel, event, data)
        dispatch(event, data, channel)

    client.connection.event_handler = record
    client.inbox = inbox
    errors = queue.Queue()
    client.connection.bind("pusher:error", errors.put)
    established = queue.Queue()
    client.connection.bind("pusher:connection_established", established.put)
    client.connect()
    try:
        data = json.loads(established.get(timeout=TIMEOUT))
    except queue.Empty:
        raise AssertionError("no pusher:connection_established within %.0fs (state %s)" % (TIMEOUT, client.connection.state)) from None
    assert client.connection.socket_id == data["socket_id"], data
    assert client.connection.state == "connected", client.connection.state
    client.errors = errors
    return client


def close(client):
    """Disconnects without waiting long for Pysher's thread: when websocket-client's close()
    (main thread) consumes the server's close reply, the reader thread stays parked in poll()
    for Pysher's ping_timeout (100 s). It is a daemon thread, so it cannot hold the process."""
    client.disconnect(timeout=0.2)


def recorder(channel, *events):
    """A queue receiving (event, data) for each listed event on the channel."""
    q = queue.Queue()
    for e in events:
        channel.bind(e, lambda data, e=e: q.put((e, data)))
    return q


def expect(q, event, timeout=TIMEOUT):
    """The data of the next `event` in q; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        try:
            e, data = q.get(timeout=max(left, 0.001))
        except queue.Empty:
            raise AssertionError("no %s within %.0fs (saw %s)" % (event, timeout, seen))
        if e == event:
            return data
        seen.append(e)


def subscribe(client, name, auth=None):
    """Subscribes a Pysher client and waits for subscription_succeeded.

    Returns (channel, queue of member_added/member_removed, subscription_succeeded data)."""
    channel = client.subscribe(name, auth=auth)
    members = recorder(channel, "pusher_internal:member_added", "pusher_internal:member_removed")
    event, data = client.inbox.take(name, ("pusher_internal:subscription_succeeded", "pusher:subscription_error"))
    assert event != "pusher:subscription_error", "subscription to %s refused: %s" % (name, data)
    return channel, members, data


def assert_no_connection_errors(client):
    assert client.errors.empty(), "pusher:error received: %s" % client.errors.get()
    assert client.connection.state == "connected", client.connection.state


# ---------------------------------------------------------------------------------------------


def connects_with_protocol_6():
    c = new_client()
    assert "protocol=6" in c.url, c.url
    # Pysher pings on open with "data": ""; that must be answered, not refused.
    pongs = queue.Queue()
    c.connection.bind("pusher:pong", pongs.put)
    c.connection.send_ping()
    pongs.get(timeout=TIMEOUT)
    assert_no_connection_errors(c)


def public_channel_receives():
    c = new_client()
    name = ch("py-pysher-public")
    channel, _, data = subscribe(c, name)
    assert json.loads(data) == {}, data
    got = recorder(channel, "news")
    assert sdk.trigger(name, "news", {"headline": "ünïcode ✓"}) == {}
    assert json.loads(expect(got, "news")) == {"headline": "ünïcode ✓"}
    assert_no_connection_errors(c)


def private_channel_with_sdk_auth_receives():
    c = new_client()
    name = ch("private-py-pysher")
    auth = sdk.authenticate(name, c.connection.socket_id)["auth"]
    channel, _, _ = subscribe(c, name, auth=auth)
    got = recorder(channel, "secret")
    assert sdk.trigger(name, "secret", {"level": 7}) == {}
    assert json.loads(expect(got, "secret")) == {"level": 7}
    assert_no_connection_errors(c)


def private_channel_bad_auth_refused():
    c = new_client()
    name = ch("private-py-pysher-bad")
    c.subscribe(name, auth=KEY + ":" + "0" * 64)
    event, data = c.inbox.take(name, ("pusher_internal:subscription_succeeded", "pusher:subscription_error"))
    assert event == "pusher:subscription_error", "a bad signature was accepted"
    data = data if isinstance(data, dict) else json.loads(data)
    assert data.get("type") == "AuthError" and data.get("status") == 401, data
    # The connection stays open and usable.
    subscribe(c, ch("py-pysher-after-refusal"))
    assert c.connection.state == "connected"


def client_event_between_pysher_clients():
    a, b = new_client(), new_client()
    name = ch("private-py-pysher-whisper")
    ca, _, _ = subscribe(a, name, auth=sdk.authenticate(name, a.connection.socket_id)["auth"])
    cb, _, _ = subscribe(b, name, auth=sdk.authenticate(name, b.connection.socket_id)["auth"])
    at_b = recorder(cb, "client-typing")
    at_a = recorder(ca, "client-typing")
    ca.trigger("client-typing", {"who": "a"})
    data = expect(at_b, "client-typing")
    assert (data if isinstance(data, dict) else json.loads(data)) == {"who": "a"}, data
    time.sleep(0.3)
    assert at_a.empty(), "the sender received its own client event: %s" % (at_a.get(),)


def presence_channel_members_and_events():
    name = ch("presence-py-pysher")
    # Pysher signs presence subscriptions itself when given the secret and user_data.
    a = new_client(secret=SECRET, user_data={"user_id": "py-a", "user_info": {"name": "Ada"}})
    channel_a, q_a, data = subscribe(a, name)
    presence = json.loads(data)["presence"]
    assert presence == {"ids": ["py-a"], "hash": {"py-a": {"name": "Ada"}}, "count": 1}, presence

    b = new_client(secret=SECRET, user_data={"user_id": "py-b", "user_info": {"name": "Bob"}})
    channel_b, _, data = subscribe(b, name)
    presence = json.loads(data)["presence"]
    assert presence["count"] == 2 and sorted(presence["ids"]) == ["py-a", "py-b"], presence
    assert presence["hash"] == {"py-a": {"name": "Ada"}, "py-b": {"name": "Bob"}}, presence
    added = json.loads(expect(q_a, "pusher_internal:member_added"))
    assert added == {"user_id": "py-b", "user_info": {"name": "Bob"}}, added

    users = sdk.users_info(name)["users"]
    assert sorted(u["id"] for u in users) == ["py-a", "py-b"], users

    got_a, got_b = recorder(channel_a, "standup"), recorder(channel_b, "standup")
    assert sdk.trigger(name, "standup", {"at": "09:30"}) == {}
    assert json.loads(expect(got_a, "standup")) == {"at": "09:30"}
    assert json.loads(expect(got_b, "standup")) == {"at": "09:30"}

    close(b)
    removed = json.loads(expect(q_a, "pusher_internal:member_removed"))
    assert removed == {"user_id": "py-b"}, removed
    assert_no_connection_errors(a)


CHECKS = [
    ("Pysher connects (protocol 6) and its ping is answered", connects_with_protocol_6),
    ("public channel: Pysher receives an event triggered by the SDK", public_channel_receives),
    ("private channel: SDK authenticate() accepted, event received", private_channel_with_sdk_auth_receives),
    ("private channel: bad auth gives AuthError 401, connection stays", private_channel_bad_auth_refused),
    ("private channel: client event reaches the other Pysher client only", client_event_between_pysher_clients),
    ("presence channel: members, member_added/removed, events", presence_channel_members_and_events),
]


def main():
    try:
        for name, fn in CHECKS:
            try:
                fn()
            except Exception:
                print("FAIL %s" % name, flush=True)
                traceback.print_exc(file=sys.stdout)
                return 1
            print("ok   %s" % name, flush=True)
        return 0
    finally:
        for c in clients:
            try:
                close(c)
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())
