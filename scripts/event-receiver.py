#!/usr/bin/env python3
"""The demo's event receiver: prints the events kratos-passkeys delivers.

Python 3, standard library only. It checks each delivery's Standard Webhooks
signature (https://www.standardwebhooks.com) with the endpoint's secret and
prints one line per event on stdout:

    2026-01-05T10:12:03Z  passkey.registered  identity 6f1c…  passkey "MacBook"  ip 127.0.0.1

    EVENT_RECEIVER_SECRET=whsec_... scripts/event-receiver.py [--host 127.0.0.1] [--port 8191]

(or EVENT_RECEIVER_HOST / EVENT_RECEIVER_PORT), with the service pointed at it:

    KRATOS_PASSKEYS__EVENTS__ENDPOINTS='[{"name":"demo-receiver",
      "url":"http://127.0.0.1:8191/events","secret":"whsec_..."}]'

POST /events answers 204 for a signed event, 401 for a bad signature or a
timestamp more than 5 minutes off, 400 for a body that is not a JSON event.
GET /events answers the last 100 events received, oldest first, as JSON:
[{"id": <webhook-id>, "type", "timestamp", "data"}, ...]. A redelivery (an
id already among them) is answered 204 and printed as such, not kept twice.
`scripts/stack up` runs it on 127.0.0.1:8191 (docker-compose.yml too).
"""

import argparse
import base64
import collections
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60
MAX_BODY_BYTES = 1 << 20
KEPT = 100


def signing_key(secret):
    """The HMAC key of a `whsec_<base64>` secret."""
    if not secret.startswith("whsec_"):
        raise ValueError("the secret must start with whsec_")
    key = base64.b64decode(secret[len("whsec_"):], validate=True)
    if not 24 <= len(key) <= 64:
        raise ValueError(f"the secret must hold 24 to 64 bytes, not {len(key)}")
    return key


def verify(key, headers, body):
    """None when the delivery is signed with `key` and fresh, else why not."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        sent = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not a number"
    if abs(time.time() - sent) > TOLERANCE_SECONDS:
        return "webhook-timestamp is more than 5 minutes off"
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # Several space-separated "v1,<base64>" may come (while a secret rotates).
    for signature in signatures.split():
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return None
    return "no signature matches"


def describe(event):
    """One readable line for an event."""
    data = event.get("data") or {}
    passkey = data.get("passkey") or {}
    if "passkeys" in data:  # identity.purged
        names = ", ".join(f'"{p.get("name")}"' for p in data["passkeys"]) or "none"
        what = f"passkeys {names}"
    else:
        what = f'passkey "{passkey.get("name", "?")}"'
    ip = (data.get("client") or {}).get("ip") or "-"
    line = f'{event.get("timestamp", "?")}  {event.get("type", "?")}  identity {data.get("identity_id", "?")}  {what}  ip {ip}'
    if data.get("previous_name") is not None:
        line += f'  (was "{data["previous_name"]}")'
    if data.get("actor") not in (None, "person"):
        line += f'  by {data["actor"]}'
    if data.get("reason"):
        line += f'  reason {data["reason"]}'
    return line


class Handler(BaseHTTPRequestHandler):
    key = b""
    events = collections.deque(maxlen=KEPT)
    lock = threading.Lock()

    def do_GET(self):
        if self.path.split("?")[0] != "/events":
            return self.answer(404)
        with self.lock:
            body = json.dumps(list(self.events), indent=2).encode()
        self.answer(200, body)

    def do_POST(self):
        if self.path.split("?")[0] != "/events":
            return self.answer(404)
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            return self.answer(400)
        if int(length) > MAX_BODY_BYTES:
            return self.answer(413)
        body = self.rfile.read(int(length))
        refused = verify(self.key, self.headers, body)
        if refused:
            print(f"refused a delivery: {refused}", file=sys.stderr, flush=True)
            return self.answer(401)
        try:
            event = json.loads(body)
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise ValueError("not an event")
        except ValueError as error:
            print(f"refused a delivery: the body is not a JSON event ({error})", file=sys.stderr, flush=True)
            return self.answer(400)
        msg_id = self.headers["webhook-id"]
        with self.lock:
            again = any(kept["id"] == msg_id for kept in self.events)
            if not again:
                self.events.append({"id": msg_id, **event})
        print(describe(event) + ("  (redelivered)" if again else ""), flush=True)
        self.answer(204)

    def answer(self, status, body=b""):
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Quiet: stdout is for the events."""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("EVENT_RECEIVER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("EVENT_RECEIVER_PORT", "8191")))
    args = parser.parse_args()
    try:
        Handler.key = signing_key(os.environ.get("EVENT_RECEIVER_SECRET", ""))
    except ValueError as error:
        sys.exit(f"event-receiver: EVENT_RECEIVER_SECRET: {error} (whsec_ and base64)")
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"event-receiver: listening on http://{args.host}:{args.port}/events", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
