#!/usr/bin/env python3
"""Opens N WebSocket connections to a running exchange at once, sends one
`auth` with a wrong password on each, and reports how many were answered,
how fast, and with which error codes (BENCHMARKS.md, "Login flood").

    pip install websockets
    python3 bench/scripts/login_flood.py 400 [port]

Watch the server's /proc/<pid>/status (VmRSS, VmHWM, Threads) meanwhile.
"""
import asyncio
import json
import sys
import time
from collections import Counter

import websockets

N = int(sys.argv[1])
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 18080


async def one(i):
    ws = await websockets.connect(f"ws://127.0.0.1:{PORT}/ws", ping_interval=None)
    await ws.send(json.dumps({"op": "auth", "id": 1, "args": {"user": "alice", "password": f"wrong-{i}"}}))
    return ws


async def answer(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 60))


async def main():
    t = time.time()
    conns = await asyncio.gather(*[one(i) for i in range(N)], return_exceptions=True)
    ok = [c for c in conns if not isinstance(c, Exception)]
    print("connected", len(ok), "errors", len(conns) - len(ok), round(time.time() - t, 2))
    rs = await asyncio.gather(*[answer(ws) for ws in ok], return_exceptions=True)
    got = [r for r in rs if not isinstance(r, Exception)]
    codes = Counter(r.get("err", {}).get("code") for r in got)
    print("answered", len(got), round(time.time() - t, 2), dict(codes))


asyncio.run(main())
