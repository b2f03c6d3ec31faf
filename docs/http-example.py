#!/usr/bin/env python3
"""tenantkv over HTTP from Python, with the standard library only.

    TENANTKV_HTTP=http://127.0.0.1:7402 TENANTKV_TOKEN="$(cat data/operator.token)" \
        python3 docs/http-example.py

With an operator token it creates a tenant (TENANTKV_TENANT, default
"pyshop") and a token of it, then uses only that tenant token: writes,
reads, a page of keys, a transaction and a watch. docs/openapi.yaml
describes every endpoint; docs/HTTP.md is the guide.
"""

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request

BASE = os.environ.get("TENANTKV_HTTP", "http://127.0.0.1:7402").rstrip("/") + "/v1"


class APIError(Exception):
    def __init__(self, status, body):
        super().__init__(f"{status} {body.get('code')}: {body.get('message')}")
        self.status, self.code = status, body.get("code")


def call(token, method, path, body=None, raw=False, headers=None):
    """One request; JSON in and out unless raw (bytes in and out)."""
    data = body if raw or body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = resp.read()
            if raw:
                return out, resp.headers
            return json.loads(out) if out else None
    except urllib.error.HTTPError as e:
        raise APIError(e.code, json.loads(e.read() or b"{}")) from None


def key_path(tenant, key: bytes):
    # Keys are any bytes: percent-encode every one that is not unreserved,
    # "/" included.
    return f"/tenants/{tenant}/keys/" + urllib.parse.quote(key, safe="")


def text_or_bytes(s, encoding):
    return base64.b64decode(s) if encoding == "base64" else s.encode()


def main():
    op = os.environ["TENANTKV_TOKEN"]
    tenant = os.environ.get("TENANTKV_TENANT", "pyshop")

    # The operator creates the tenant and a token bound to it.
    call(op, "POST", "/tenants", {"name": tenant, "limits": {"max_keys": 1000}})
    token = call(op, "POST", f"/tenants/{tenant}/tokens", {})["token"]

    # Single keys: the value is the body, its version a header.
    call(token, "PUT", key_path(tenant, b"user/1"), b"alice", raw=True)
    call(token, "PUT", key_path(tenant, b"user/2"), b"bob", raw=True)
    call(token, "PUT", key_path(tenant, b"bin/\x00\xff"), b"\x01\x02", raw=True)
    value, headers = call(token, "GET", key_path(tenant, b"user/1"), raw=True)
    assert value == b"alice", value
    first_version = int(headers["X-Tenantkv-Version"])

    # A page of keys, followed through its cursor.
    keys, cursor = [], None
    while True:
        q = {"prefix": "", "limit": "2"}
        if cursor:
            q["cursor"] = cursor
        page = call(token, "GET", f"/tenants/{tenant}/keys?" + urllib.parse.urlencode(q))
        keys += [text_or_bytes(kv["key"], kv["key_encoding"]) for kv in page["kvs"]]
        if not page["more"]:
            break
        cursor = page["cursor"]
    assert keys == [b"bin/\x00\xff", b"user/1", b"user/2"], keys

    # A transaction: applied only if user/1 still holds alice.
    txn = {
        "conditions": [{"key": "user/1", "value": "alice"}],
        "mutations": [{"op": "set", "key": "user/1", "value": "carol"},
                      {"op": "add", "key": "visits", "delta": 1}],
    }
    assert call(token, "POST", f"/tenants/{tenant}/txn", txn)["applied"] is True
    try:
        call(token, "POST", f"/tenants/{tenant}/txn", txn)  # alice is gone now
        raise AssertionError("a failed condition was applied")
    except APIError as e:
        assert e.status == 409 and e.code == "condition_failed", e

    # Another tenant, existing or not, is the same 403.
    for other in ("acme", "no-such-tenant"):
        try:
            call(token, "GET", key_path(other, b"user/1"), raw=True)
            raise AssertionError("reached another tenant")
        except APIError as e:
            assert e.status == 403 and e.code == "permission_denied", e

    # A watch (Server-Sent Events) from the first write: one event per
    # version, its id the version (send it back as Last-Event-ID to resume).
    req = urllib.request.Request(BASE + f"/tenants/{tenant}/watch?prefix=user%2F&from={first_version}")
    req.add_header("Authorization", "Bearer " + token)
    events = []
    with urllib.request.urlopen(req, timeout=30) as stream:
        event = {}
        for line in stream:
            line = line.decode().rstrip("\n")
            if line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif line == "" and "data" in event:
                events.append(event)
                event = {}
                if len(events) == 3:
                    break
    changes = [(c["key"], c.get("value")) for e in events for c in e["data"]["changes"]]
    assert changes == [("user/1", "alice"), ("user/2", "bob"), ("user/1", "carol")], changes
    assert all(e["id"] == e["data"]["version"] for e in events)
    print("ok")


if __name__ == "__main__":
    main()
