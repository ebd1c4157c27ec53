#!/usr/bin/env python3
"""Measure a strangler-fig move under load, against a running shop.

    MICROSHOP_RATE_LIMIT_RPS=100000 MICROSHOP_RATE_LIMIT_BURST=100000 \
      MICROSHOP_ADMIN_PASSWORD=admin-pass-123 go run ./cmd/microshop up &
    scripts/facade-move.py [CUSTOMERS [ORDERS_EACH]]     # default 20 100

It signs up CUSTOMERS customers, has each rename themselves and place
ORDERS_EACH orders the old way (POST /orders, on the monolith), then keeps 8
of them reading /profile and /orders while it moves /profile to users and
/orders to orders, and prints how long each move took, what it copied, and
the readers' requests, errors and latency. The shop's log line "legacy route
moved" says how long each route was paused. Python's standard library only;
a fresh data directory (the moves are one way).
"""
import json, os, sys, threading, time, urllib.error, urllib.request

shop = os.environ.get("SHOP", "http://127.0.0.1:8080")
password = os.environ.get("MICROSHOP_ADMIN_PASSWORD", "admin-pass-123")
def call(method, path, token=None, body=None):
    req = urllib.request.Request(shop + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token: req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, e.read()
_, t = call("POST", "/api/v1/auth/login", body={"email": os.environ.get("MICROSHOP_ADMIN_EMAIL", "admin@microshop.local"), "password": password}); admin = t["access_token"]
_, prods = call("GET", "/api/v1/products"); pid = prods["items"][0]["id"]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
PER = int(sys.argv[2]) if len(sys.argv) > 2 else 100
tokens = []
for i in range(N):
    call("POST", "/api/v1/users", body={"email": f"c{i}@ex.com", "name": f"C{i}", "password": "password-123"})
    _, t = call("POST", "/api/v1/auth/login", body={"email": f"c{i}@ex.com", "password": "password-123"}); tokens.append(t["access_token"])
order = {"lines": [{"product_id": pid, "qty": 1}], "card_number": "4242424242424242", "deliver_to": {"name": "A", "line1": "1 Road", "city": "C", "postal_code": "1", "country": "GB"}}
def history(tok):
    call("PUT", "/profile", tok, {"name": "Renamed"})
    for _ in range(PER): call("POST", "/orders", tok, order)
ths = [threading.Thread(target=history, args=(tok,)) for tok in tokens]
t0 = time.time(); [x.start() for x in ths]; [x.join() for x in ths]
print(f"history: {N} customers, {N*PER} orders in {time.time()-t0:.1f}s")
stop = False; lat = []; errs = []
def reader(tok):
    while not stop:
        s = time.time(); st, _ = call("GET", "/orders" if len(lat) % 2 else "/profile", tok); lat.append(time.time() - s)
        if st != 200: errs.append(st)
rs = [threading.Thread(target=reader, args=(tok,)) for tok in tokens[:8]]
[x.start() for x in rs]; time.sleep(1)
for route, target in (("/profile", "users"), ("/orders", "orders")):
    s = time.time(); st, body = call("PUT", "/api/v1/admin/facade/routes", admin, {"route": route, "target": target})
    print(f"move {route}: {st} in {time.time()-s:.2f}s, copied {body.get('copied') if isinstance(body, dict) else body}")
time.sleep(1); stop = True; [x.join() for x in rs]
lat.sort()
print(f"readers: {len(lat)} requests, {len(errs)} errors, p50 {lat[len(lat)//2]*1000:.1f} ms, p99 {lat[int(len(lat)*.99)]*1000:.1f} ms, max {lat[-1]*1000:.1f} ms")
