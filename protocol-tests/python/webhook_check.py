"""Webhooks captured from the server under test, validated with the official Pusher Python SDK.

Usage: webhook_check.py FILE [EVENT_NAME...]

FILE is a JSON list of captured requests, [{"key": X-Pusher-Key, "signature": X-Pusher-Signature,
"body": raw body}, ...] (tests/webhooks.test.mjs writes it). Each one must pass
pusher.Pusher(...).validate_webhook(key, signature, body), which returns the parsed body (a dict
with "time_ms" and "events") when the key is the app's, the signature is the HMAC-SHA256 of the
body with the app's secret and time_ms is within 5 minutes, and None otherwise. A changed body,
a body signed with another secret and another key must each give None. Every EVENT_NAME given
must occur in some webhook. Reads PT_APP_ID, PT_APP_KEY, PT_APP_SECRET. Prints one line per
check and exits non-zero on the first failure.
"""
import hashlib
import hmac
import json
import os
import sys
import traceback

import pusher

APP_ID = os.environ.get("PT_APP_ID", "123456")
KEY = os.environ.get("PT_APP_KEY", "pt-key")
SECRET = os.environ.get("PT_APP_SECRET", "pt-secret")

sdk = pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET, ssl=False)


def load(path):
    with open(path, encoding="utf-8") as f:
        hooks = json.load(f)
    assert isinstance(hooks, list) and hooks, "no captured webhooks in %s" % path
    return hooks


def tamper(body):
    """The same JSON with one event's channel changed (so it still parses)."""
    data = json.loads(body)
    data["events"][0]["channel"] += "-tampered"
    changed = json.dumps(data, separators=(",", ":"))
    assert changed != body
    return changed


def check_valid(hooks):
    for h in hooks:
        result = sdk.validate_webhook(h["key"], h["signature"], h["body"])
        assert result is not None, "validate_webhook returned None for a genuine webhook:\n  key %r\n  signature %r\n  expected signature %r\n  body %s" % (
            h["key"],
            h["signature"],
            hmac.new(SECRET.encode(), h["body"].encode(), hashlib.sha256).hexdigest(),
            h["body"],
        )
        assert result == json.loads(h["body"]), "validate_webhook returned %r, not the parsed body %s" % (result, h["body"])
        events = result["events"]
        assert isinstance(events, list) and events, "no events in %s" % h["body"]
        for e in events:
            assert isinstance(e.get("name"), str) and isinstance(e.get("channel"), str), "event without name/channel: %r" % e


def check_tampered_body(hooks):
    for h in hooks:
        bad = tamper(h["body"])
        assert sdk.validate_webhook(h["key"], h["signature"], bad) is None, "a tampered body validated: %s" % bad


def check_other_secret(hooks):
    other = hmac.new((SECRET + "-wrong").encode(), hooks[0]["body"].encode(), hashlib.sha256).hexdigest()
    assert sdk.validate_webhook(hooks[0]["key"], other, hooks[0]["body"]) is None, "a body signed with another secret validated"


def check_other_key(hooks):
    h = hooks[0]
    assert sdk.validate_webhook(KEY + "-other", h["signature"], h["body"]) is None, "a webhook with another key validated"


def main():
    hooks = load(sys.argv[1])
    expected = sys.argv[2:]

    def check_names(hooks):
        names = {e["name"] for h in hooks for e in json.loads(h["body"])["events"]}
        missing = [n for n in expected if n not in names]
        assert not missing, "no webhook with %s among %s" % (missing, sorted(names))

    checks = [
        ("validate_webhook returns the parsed body with its events for all %d webhooks" % len(hooks), check_valid),
        ("validate_webhook rejects a tampered body (None)", check_tampered_body),
        ("validate_webhook rejects a body signed with another secret (None)", check_other_secret),
        ("validate_webhook rejects another key (None)", check_other_key),
        ("captured event names include %s" % ", ".join(expected), check_names),
    ]
    for name, fn in checks:
        try:
            fn(hooks)
        except Exception:
            print("FAIL %s" % name, flush=True)
            traceback.print_exc(file=sys.stdout)
            return 1
        print("ok   %s" % name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
