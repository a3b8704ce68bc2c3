#!/usr/bin/env python3
"""The peer in scripts/bench-gateway.sh: a stand-in for the original Python hub.

It exists only for the benchmark, so that one run shows the Rust hub beside the design it
replaces, under the same load tool. It is written the way the original was: one Tornado
process, a WebSocket endpoint /ws/device (any query string), a dict of devices, the parsed
readings kept in a list and appended every 200 ms to one CSV file per day,
<data-dir>/readings-YYYY-MM-DD.csv (received_ms,id,counter,temp; UTC days). Lines are
`ID,COUNTER,TEMP`, or minimally key=value (`id=7,temp=1`); a bad line gets `error: ...` back.
SIGTERM or SIGINT: stop, write what is pending, exit 0. No tokens, no dashboard, no commands.

  tornado_hub.py --port 0 --data-dir DIR --ready-file PATH
"""
import argparse
import asyncio
import csv
import json
import logging
import os
import signal
import time
from datetime import datetime, timezone

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web
import tornado.websocket

devices = {}  # id -> {"values": {...}, "last_seen_ms": int, "count": int}
pending = []  # (received_ms, id, counter, temp), not yet written
sockets = set()


def parse_line(line, default_id):
    """One line -> (id, counter, temp); counter or temp may be "" in key=value lines."""
    if "=" in line:
        pairs = dict(part.split("=", 1) for part in line.split(",") if "=" in part)
        device = pairs.pop("id", default_id)
        counter, temp = pairs.get("counter", ""), pairs.get("temp", "")
    else:
        parts = line.split(",")
        if len(parts) != 3:
            raise ValueError(f"expected ID,COUNTER,TEMP, got {len(parts)} fields")
        device, counter, temp = parts
    if not device:
        raise ValueError("no device id")
    for value in (counter, temp):
        if value:
            float(value)  # ValueError for a value that is not a number
    return device.strip(), counter, temp


class DeviceSocket(tornado.websocket.WebSocketHandler):
    def open(self):
        self.device = self.get_query_argument("id", None)
        sockets.add(self)

    def on_message(self, message):
        if isinstance(message, bytes):
            self.write_message("error: binary frames are not accepted")
            return
        now_ms = int(time.time() * 1000)
        for line in message.splitlines():
            if not line.strip():
                continue
            try:
                device, counter, temp = parse_line(line.strip(), self.device)
            except ValueError as err:
                self.write_message(f"error: {err}: {line[:80]}")
                continue
            self.device = device
            entry = devices.setdefault(device, {"values": {}, "last_seen_ms": 0, "count": 0})
            entry["values"].update(counter=counter, temp=temp)
            entry["last_seen_ms"] = now_ms
            entry["count"] += 1
            pending.append((now_ms, device, counter, temp))

    def on_close(self):
        sockets.discard(self)


def flush(data_dir):
    """Appends the pending rows to the per-day CSV files."""
    global pending
    rows, pending = pending, []
    by_day = {}
    for row in rows:
        day = datetime.fromtimestamp(row[0] / 1000, timezone.utc).strftime("%Y-%m-%d")
        by_day.setdefault(day, []).append(row)
    for day, day_rows in by_day.items():
        path = os.path.join(data_dir, f"readings-{day}.csv")
        new = not os.path.exists(path)
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(("received_ms", "id", "counter", "temp"))
            writer.writerows(day_rows)
            f.flush()


def write_ready(path, port):
    with open(path + ".tmp", "w") as f:
        json.dump({"ws": f"ws://127.0.0.1:{port}/ws/device", "pid": os.getpid()}, f)
    os.rename(path + ".tmp", path)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8888, help="0 picks a free port")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--ready-file", help="JSON with the address, written once listening")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.makedirs(args.data_dir, exist_ok=True)

    app = tornado.web.Application(
        [(r"/ws/device", DeviceSocket)],
        websocket_ping_interval=10,
        websocket_ping_timeout=10,
    )
    listeners = tornado.netutil.bind_sockets(args.port, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(listeners)
    flusher = tornado.ioloop.PeriodicCallback(lambda: flush(args.data_dir), 200)
    flusher.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = listeners[0].getsockname()[1]
    if args.ready_file:
        write_ready(args.ready_file, port)
    print(f"listening on ws://127.0.0.1:{port}/ws/device", flush=True)

    await stop.wait()
    server.stop()
    flusher.stop()
    for socket in list(sockets):
        socket.close(1001, "server stopping")
    flush(args.data_dir)
    print(f"stopped: {sum(d['count'] for d in devices.values())} readings "
          f"from {len(devices)} devices", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
