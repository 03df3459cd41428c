"""Schemathesis hooks for Clarion's HTTP API (loaded by run.py through SCHEMATHESIS_HOOKS).

Every `/apps/{app_id}/...` request must carry a Pusher signature over the exact bytes the server
reads, so the signing happens in a `requests` auth object, after schemathesis has serialized the
case into its final URL and body: a signature computed from the case's values would be wrong
whenever the serializer encodes them differently from how the server decodes them (`+`, unicode,
repeated keys). The rules mirror docs/openapi.yaml: every query parameter except
`auth_signature`, keys lower-cased (ASCII only), sorted by key, values decoded as a form (`+` is
a space, then percent-decoding), `METHOD\\nPATH\\nQUERY` with the percent-decoded path (where `+`
stays), HMAC-SHA256 with the app secret, lowercase hex.

Two checks add what schemathesis does not know about this API: a request without its signature,
or with a wrong one, gets 401 saying so; and every 4xx answer is `{"error": "<non-empty text>"}`,
so a malformed request is told what is wrong.
"""

import atexit
import collections
import hashlib
import hmac
import json
import os
import time
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

import requests
import schemathesis

KEY = os.environ["FUZZ_APP_KEY"]
SECRET = os.environ["FUZZ_APP_SECRET"].encode()
SIGNED = ("auth_key", "auth_timestamp", "auth_version", "body_md5", "auth_signature")


def _ascii_lower(s: str) -> str:
    """Lower-cases A-Z only, as the server does (`str.lower` would change `Û` too)."""
    return s.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _decode(component: str) -> str:
    """Percent-decodes as the server does (invalid UTF-8 replaced)."""
    return unquote_to_bytes(component).decode("utf-8", errors="replace")


def _decode_form(component: str) -> str:
    """A query component: `+` is a space, then percent-decoding."""
    return _decode(component.replace("+", " "))


class PusherSignature(requests.auth.AuthBase):
    """Replaces whatever auth parameters were generated with a valid signature of the request
    as it will go on the wire."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(r.url)
        if not url.path.startswith("/apps/"):
            return r
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        # Keep the generated parameters byte for byte (their encoding is what is under test),
        # dropping only the ones this signature sets.
        kept = [
            p
            for p in url.query.split("&")
            if p and _ascii_lower(_decode_form(p.split("=", 1)[0])) not in SIGNED
        ]
        ours = [("auth_key", KEY), ("auth_timestamp", str(int(time.time()))), ("auth_version", "1.0")]
        if body:
            ours.append(("body_md5", hashlib.md5(body).hexdigest()))
        raw = kept + [f"{k}={v}" for k, v in ours]
        pairs = []
        for p in raw:
            k, _, v = p.partition("=")
            pairs.append((_ascii_lower(_decode_form(k)), _decode_form(v)))
        pairs.sort(key=lambda kv: kv[0])
        to_sign = f"{r.method.upper()}\n{_decode(url.path)}\n" + "&".join(f"{k}={v}" for k, v in pairs)
        sig = hmac.new(SECRET, to_sign.encode(), hashlib.sha256).hexdigest()
        r.url = urlunsplit(url._replace(query="&".join(raw + [f"auth_signature={sig}"])))
        return r


@schemathesis.hook
def before_load_schema(context, raw_schema):
    """The auth parameters are this hook's to set, not the fuzzer's to vary: dropped from every
    operation (and the security requirement with them), so a "negative" case never consists of
    a mutated auth parameter that the signature then replaces, which would be a valid request
    reported as an accepted invalid one. Signature checks are `signature_is_required` below."""
    raw_schema.pop("security", None)
    auth_refs = {
        f"#/components/parameters/{name}" for name in ("AuthKey", "AuthTimestamp", "AuthVersion", "BodyMd5")
    }
    for methods in raw_schema.get("paths", {}).values():
        for op in methods.values():
            if isinstance(op, dict) and "parameters" in op:
                op["parameters"] = [p for p in op["parameters"] if p.get("$ref") not in auth_refs]


@schemathesis.hook
def before_call(context, case, kwargs):
    kwargs["auth"] = PusherSignature()


# Answers by operation and status, written where run.py reads it: a run whose signed requests
# never got a 2xx would pass every check while testing nothing past the signature.
ANSWERS: collections.Counter = collections.Counter()


@schemathesis.hook
def after_call(context, case, response):
    ANSWERS[f"{case.operation.method.upper()} {case.operation.path} {response.status_code}"] += 1


@atexit.register
def _write_answers():
    if os.environ.get("FUZZ_ANSWERS"):
        with open(os.environ["FUZZ_ANSWERS"], "w") as f:
            json.dump(dict(ANSWERS), f)


@schemathesis.check
def signature_is_required(ctx, response, case):
    """The same request without its signature, and with a wrong one, is refused with 401 naming
    the problem, whatever else is wrong with it (the signature is checked first)."""
    request = response.request
    url = urlsplit(request.url)
    if not url.path.startswith("/apps/") or response.status_code == 404:
        return None
    params = url.query.split("&")
    unsigned = "&".join(p for p in params if not p.startswith("auth_signature="))
    forged = "&".join(
        p if not p.startswith("auth_signature=") else "auth_signature=" + "0" * 64 for p in params
    )
    for query, expected in ((unsigned, "Missing auth_signature"), (forged, "Invalid signature")):
        with requests.Session() as s:
            again = s.request(
                request.method,
                urlunsplit(url._replace(query=query)),
                data=request.body,
                headers=dict(request.headers),
                timeout=10,
            )
        error = (
            again.json().get("error", "")
            if again.headers.get("content-type", "").startswith("application/json")
            else ""
        )
        if again.status_code != 401 or expected not in error:
            raise AssertionError(
                f"{request.method} {url.path} with {expected.split()[0].lower()} signature: "
                f"expected 401 {expected!r}, got {again.status_code} {again.text[:200]!r}"
            )
    return None


@schemathesis.check
def error_names_the_problem(ctx, response, case):
    """A 4xx answer says what is wrong: a JSON object with a non-empty `error` string."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except Exception as e:
        raise AssertionError(f"{response.status_code} answer is not JSON ({e}): {response.text[:200]!r}")
    if not (isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip()):
        raise AssertionError(
            f'{response.status_code} answer has no non-empty "error": {response.text[:200]!r}'
        )
    return None
