"""The official Pusher Python SDK (pusher-http-python) against the server under test.

Every HTTP API call the SDK offers is made for real; deliveries and the auth signatures made by
the SDK's helpers are checked with a plain WebSocket client (websocket-client, already a Pysher
dependency). Reads PT_HOST, PT_PORT, PT_APP_ID, PT_APP_KEY, PT_APP_SECRET. Prints one line per
check and exits non-zero on the first failure.

Not covered: terminate_user_connections, because pusher 3.3.4 signs and sends it to
"/users/{id}/terminate_connections" without the "/apps/{app_id}" prefix (an SDK bug), so no
server can answer it.
"""
import json
import os
import sys
import time
import traceback
import uuid

import pusher
import websocket

HOST = os.environ.get("PT_HOST", "127.0.0.1")
PORT = int(os.environ.get("PT_PORT", "6001"))
APP_ID = os.environ.get("PT_APP_ID", "123456")
KEY = os.environ.get("PT_APP_KEY", "pt-key")
SECRET = os.environ.get("PT_APP_SECRET", "pt-secret")

RUN = uuid.uuid4().hex[:8]  # keeps channel names apart from other runs against the same server

sdk = pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET, host=HOST, port=PORT, ssl=False, timeout=5)


class Ws:
    """A bare Pusher protocol 7 WebSocket client."""

    def __init__(self):
        url = "ws://%s:%d/app/%s?protocol=7&client=pt-sdk-check&version=1.0" % (HOST, PORT, KEY)
        self.ws = websocket.create_connection(url, timeout=5)
        self.frames = []
        established = self.wait_for("pusher:connection_established")
        data = json.loads(established["data"])
        self.socket_id = data["socket_id"]
        assert data["activity_timeout"] > 0, data

    def send(self, event, data, channel=None):
        frame = {"event": event, "data": data}
        if channel is not None:
            frame["channel"] = channel
        self.ws.send(json.dumps(frame))

    def _recv(self, deadline):
        """Reads one frame into the backlog (answering pings); None on timeout."""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        self.ws.settimeout(left)
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        frame = json.loads(raw)
        if frame.get("event") == "pusher:ping":
            self.send("pusher:pong", {})
        else:
            self.frames.append(frame)
        return frame

    def _take(self, match):
        for i, frame in enumerate(self.frames):
            if match(frame):
                return self.frames.pop(i)
        return None

    def wait_for(self, events, channel=None, timeout=5.0):
        """Removes and returns the first frame (received or still to come) whose event is one of
        `events` (a name or a tuple) on `channel`; fails after `timeout` seconds."""
        events = (events,) if isinstance(events, str) else events

        def match(f):
            return f.get("event") in events and (channel is None or f.get("channel") == channel)

        deadline = time.monotonic() + timeout
        while True:
            frame = self._take(match)
            if frame is not None:
                return frame
            if self._recv(deadline) is None:
                raise AssertionError(
                    "no %s%s within %.0fs; unconsumed: %s"
                    % ("/".join(events), " on " + channel if channel else "", timeout, self.frames[-5:])
                )

    def assert_silent(self, event, seconds=0.5):
        """Fails if a frame with this event has arrived or arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while self._recv(deadline) is not None:
            pass
        assert not any(f.get("event") == event for f in self.frames), "unexpected %s: %s" % (event, self.frames)

    def subscribe(self, channel, auth=None, channel_data=None):
        """Subscribes and returns the subscription_succeeded frame; fails on subscription_error."""
        data = {"channel": channel}
        if auth is not None:
            data["auth"] = auth
        if channel_data is not None:
            data["channel_data"] = channel_data
        self.send("pusher:subscribe", data)
        frame = self.wait_for(("pusher_internal:subscription_succeeded", "pusher:subscription_error"), channel)
        assert frame["event"] != "pusher:subscription_error", "subscription refused: %s" % frame
        return frame

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


sockets = []


def ws():
    c = Ws()
    sockets.append(c)
    return c


def ch(name):
    return "%s-%s" % (name, RUN)


# ---------------------------------------------------------------------------------------------


def trigger_one_channel():
    c = ws()
    name = ch("py-sdk-one")
    c.subscribe(name)
    assert sdk.trigger(name, "greet", {"hello": "python", "n": 1}) == {}
    frame = c.wait_for("greet", name)
    assert json.loads(frame["data"]) == {"hello": "python", "n": 1}, frame


def trigger_several_channels():
    a, b = ws(), ws()
    na, nb = ch("py-sdk-multi-a"), ch("py-sdk-multi-b")
    a.subscribe(na)
    b.subscribe(nb)
    assert sdk.trigger([na, nb], "multi", "plain text") == {}
    assert a.wait_for("multi", na)["data"] == "plain text"
    assert b.wait_for("multi", nb)["data"] == "plain text"


def trigger_with_socket_id_excludes_it():
    sender, other = ws(), ws()
    name = ch("py-sdk-except")
    sender.subscribe(name)
    other.subscribe(name)
    assert sdk.trigger(name, "not-to-sender", {"x": 1}, socket_id=sender.socket_id) == {}
    other.wait_for("not-to-sender", name)
    sender.assert_silent("not-to-sender")


def trigger_batch():
    c = ws()
    na, nb = ch("py-sdk-batch-a"), ch("py-sdk-batch-b")
    c.subscribe(na)
    c.subscribe(nb)
    result = sdk.trigger_batch(
        [
            {"channel": na, "name": "batch-a", "data": {"i": 0}},
            {"channel": nb, "name": "batch-b", "data": {"i": 1}},
        ]
    )
    assert result == {}, result
    assert json.loads(c.wait_for("batch-a", na)["data"]) == {"i": 0}
    assert json.loads(c.wait_for("batch-b", nb)["data"]) == {"i": 1}


def trigger_batch_with_info():
    a, b = ws(), ws()
    name = ch("py-sdk-batch-info")
    a.subscribe(name)
    b.subscribe(name)
    result = sdk.trigger_batch(
        [
            {"channel": name, "name": "e", "data": "1", "info": "subscription_count"},
            {"channel": name, "name": "e", "data": "2"},
        ]
    )
    assert result == {"batch": [{"subscription_count": 2}, {}]}, result


def channels_info():
    c = ws()
    name = ch("py-sdk-listed")
    c.subscribe(name)
    result = sdk.channels_info()
    assert isinstance(result["channels"], dict), result
    assert result["channels"].get(name) == {}, result
    assert ch("py-sdk-never-used") not in result["channels"], result


def channels_info_presence_user_count():
    a, b, c = ws(), ws(), ws()
    name = ch("presence-py-sdk-list")
    for client, user in ((a, "u1"), (b, "u1"), (c, "u2")):
        data = {"user_id": user}
        signed = sdk.authenticate(name, client.socket_id, data)
        client.subscribe(name, signed["auth"], signed["channel_data"])
    result = sdk.channels_info(prefix_filter="presence-", attributes=["user_count"])
    assert all(n.startswith("presence-") for n in result["channels"]), result
    assert result["channels"].get(name) == {"user_count": 2}, result


def channel_info_subscription_count():
    a, b = ws(), ws()
    name = ch("py-sdk-info")
    a.subscribe(name)
    b.subscribe(name)
    result = sdk.channel_info(name, ["subscription_count"])
    assert result == {"occupied": True, "subscription_count": 2}, result
    assert sdk.channel_info(ch("py-sdk-empty")) == {"occupied": False}


def users_info_presence():
    a, b = ws(), ws()
    name = ch("presence-py-sdk-users")
    for client, user in ((a, "alice"), (b, "bob")):
        signed = sdk.authenticate(name, client.socket_id, {"user_id": user, "user_info": {"name": user}})
        client.subscribe(name, signed["auth"], signed["channel_data"])
    result = sdk.users_info(name)
    assert sorted(result["users"], key=lambda u: u["id"]) == [{"id": "alice"}, {"id": "bob"}], result


def authenticate_private_accepted():
    c = ws()
    name = ch("private-py-sdk-auth")
    signed = sdk.authenticate(name, c.socket_id)
    assert set(signed) == {"auth"} and signed["auth"].startswith(KEY + ":"), signed
    frame = c.subscribe(name, signed["auth"])
    assert json.loads(frame["data"]) == {}, frame
    assert sdk.trigger(name, "secret", {"ok": True}) == {}
    assert json.loads(c.wait_for("secret", name)["data"]) == {"ok": True}


def authenticate_for_another_socket_refused():
    c, other = ws(), ws()
    name = ch("private-py-sdk-stolen")
    signed = sdk.authenticate(name, other.socket_id)  # valid, but for a different connection
    c.send("pusher:subscribe", {"channel": name, "auth": signed["auth"]})
    frame = c.wait_for("pusher:subscription_error", name)
    data = frame["data"] if isinstance(frame["data"], dict) else json.loads(frame["data"])
    assert data.get("type") == "AuthError" and data.get("status") == 401, frame
    # The connection stays usable (docs/protocol.md section 0).
    c.subscribe(ch("py-sdk-after-refusal"))


def authenticate_presence_accepted():
    a, b = ws(), ws()
    name = ch("presence-py-sdk-auth")
    signed_a = sdk.authenticate(name, a.socket_id, {"user_id": "py-1", "user_info": {"name": "Ada"}})
    assert set(signed_a) == {"auth", "channel_data"}, signed_a
    a.subscribe(name, signed_a["auth"], signed_a["channel_data"])
    signed_b = sdk.authenticate(name, b.socket_id, {"user_id": "py-2", "user_info": {"name": "Bob"}})
    frame = b.subscribe(name, signed_b["auth"], signed_b["channel_data"])
    presence = json.loads(frame["data"])["presence"]
    assert presence["count"] == 2, presence
    assert sorted(presence["ids"]) == ["py-1", "py-2"], presence
    assert presence["hash"] == {"py-1": {"name": "Ada"}, "py-2": {"name": "Bob"}}, presence
    added = a.wait_for("pusher_internal:member_added", name)
    assert json.loads(added["data"]) == {"user_id": "py-2", "user_info": {"name": "Bob"}}, added


def authenticate_user_signin_accepted():
    c = ws()
    signed = sdk.authenticate_user(c.socket_id, {"id": "py-signed", "name": "Py"})
    assert set(signed) == {"auth", "user_data"}, signed
    c.send("pusher:signin", {"auth": signed["auth"], "user_data": signed["user_data"]})
    frame = c.wait_for("pusher:signin_success")
    data = frame["data"] if isinstance(frame["data"], dict) else json.loads(frame["data"])
    assert json.loads(data["user_data"]) == {"id": "py-signed", "name": "Py"}, frame


def wrong_secret_refused():
    bad = pusher.Pusher(app_id=APP_ID, key=KEY, secret="not-the-secret", host=HOST, port=PORT, ssl=False, timeout=5)
    try:
        bad.trigger(ch("py-sdk-bad"), "x", {})
    except pusher.errors.PusherBadAuth as e:
        body = json.loads(str(e))
        assert "signature" in body["error"].lower(), body
        return
    raise AssertionError("a request signed with the wrong secret was accepted")


CHECKS = [
    ("trigger to one channel: {} and delivered", trigger_one_channel),
    ("trigger to several channels: {} and delivered to each", trigger_several_channels),
    ("trigger with socket_id: that connection is excluded", trigger_with_socket_id_excludes_it),
    ("trigger_batch: {} and every event delivered", trigger_batch),
    ("trigger_batch with info: index-aligned batch attributes", trigger_batch_with_info),
    ("channels_info: occupied channels as an object", channels_info),
    ("channels_info presence- user_count: distinct users", channels_info_presence_user_count),
    ("channel_info subscription_count", channel_info_subscription_count),
    ("users_info on a presence channel", users_info_presence),
    ("authenticate (private): the server accepts the auth", authenticate_private_accepted),
    ("authenticate for another socket: AuthError 401, connection stays", authenticate_for_another_socket_refused),
    ("authenticate (presence, custom_data): accepted, members correct", authenticate_presence_accepted),
    ("authenticate_user: pusher:signin accepted", authenticate_user_signin_accepted),
    ("wrong secret: PusherBadAuth naming the signature", wrong_secret_refused),
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
        for c in sockets:
            c.close()


if __name__ == "__main__":
    sys.exit(main())
