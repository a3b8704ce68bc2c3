"""Tests of iothub.py under CPython, standard library only, the same three ways as the Arduino
library's host test (devices/arduino/host/test_iothub.cpp):

1. misuse of the API, no network;
2. a hostile peer (a socket in this test, not a hub): the bytes written, garbage thrown back;
3. the real hub started by devices/test.sh: registration, readings confirmed by stored=, a
   command through the REST API acknowledged, 10 s of silence survived, the hub stopped and
   restarted mid-stream with nothing lost or duplicated; then a framed device.

Environment as for the C++ test (IOTHUB_TCP_PORT, IOTHUB_HTTP, IOTHUB_API_TOKEN,
IOTHUB_PY_LINES_ID/TOKEN, IOTHUB_PY_FRAMED_ID/TOKEN, IOTHUB_CTL). Prints one line per check,
then "N passed, N failed"; exits 1 if any failed.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iothub  # noqa: E402

passed = failed = 0


def check(ok, what):
    global passed, failed
    print("%s - %s" % ("ok" if ok else "FAIL", what), flush=True)
    if ok:
        passed += 1
    else:
        failed += 1
    return ok


def expect(got, want, what):
    return check(got == want, "%s: %s (expected %s)" % (what, iothub.name(got), iothub.name(want)))


def pump_until(hub, seconds, done=lambda: False):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        hub.loop()
        if done():
            return True
        time.sleep(0.002)
    return done()


def wait_status(hub, status, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if hub.loop() == status:
            return True
        time.sleep(0.002)
    return False


def statuses_over(hub, seconds):
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(hub.loop())
        time.sleep(0.002)
    return seen


class Led:
    def __init__(self):
        self.calls, self.value, self.duration = 0, None, None

    def __call__(self, value, duration_ms):
        self.calls += 1
        self.value, self.duration = value, duration_ms


# --- 1. misuse ------------------------------------------------------------------------------

def test_misuse():
    print("# API misuse, no network")
    expect(iothub.Hub(None, 5070, "t").begin(), iothub.BAD_ARGUMENT, "begin() without a host")
    expect(iothub.Hub("127.0.0.1", 0, "t").begin(), iothub.BAD_ARGUMENT, "begin() with port 0")
    expect(iothub.Hub("127.0.0.1", "5070", "t").begin(), iothub.BAD_ARGUMENT, "a port given as text")
    expect(iothub.Hub("127.0.0.1", 1, "to\nken").begin(), iothub.BAD_ARGUMENT, "a newline in the token")
    expect(iothub.Hub("127.0.0.1", 1, None).begin(), iothub.BAD_ARGUMENT, "no token and no id")
    expect(iothub.Hub("127.0.0.1", 1, "t", fmt=iothub.CSV).begin(), iothub.BAD_ARGUMENT, "CSV without an id")
    expect(iothub.Hub("127.0.0.1", 1, "t", keepalive_ms=5).begin(), iothub.BAD_ARGUMENT, "keepalive 5 ms")
    hub = iothub.Hub("127.0.0.1", 1, "token", capacity=4, max_values=2)
    expect(hub.add("temp", 1), iothub.NOT_STARTED, "add() before begin()")
    expect(hub.loop(), iothub.NOT_STARTED, "loop() before begin()")
    expect(hub.begin(), iothub.OK, "begin()")
    for value in (float("nan"), float("inf"), "warm", None, [1]):
        expect(hub.add("temp", value), iothub.BAD_VALUE, "add(%r)" % (value,))
    for bad in ("", None, 7, "a,b", "a=b", "a|b", 'te"mp', "TS", "sync", "x" * 65, "sp ace"):
        expect(hub.add(bad, 1), iothub.BAD_NAME, "add() named %r" % (bad,))
    expect(hub.send(), iothub.NO_VALUES, "send() without add()")
    expect(hub.add("a", 1), iothub.OK, "add(a)")
    expect(hub.add("b", True), iothub.OK, "add(b, True): a bool is a number")
    expect(hub.add("c", 3), iothub.TOO_MANY_VALUES, "a third value of 2")
    expect(hub.add("a", 5), iothub.OK, "add(a) again replaces it")
    expect(hub.send(), iothub.QUEUED, "send() while offline")
    for i in range(3):
        hub.add("a", i)
        hub.send()
    hub.add("a", 9)
    expect(hub.send(), iothub.DROPPED_OLDEST, "send() into a full ring")
    check(hub.pending == 4 and hub.dropped == 1, "4 pending, 1 dropped (%d, %d)" % (hub.pending, hub.dropped))
    expect(hub.on_command("1LED", print), iothub.BAD_NAME, "a command name starting with a digit")
    expect(hub.on_command("LED", None), iothub.BAD_ARGUMENT, "a command without a handler")
    expect(hub.on_command("LED", print, 1, 0), iothub.BAD_ARGUMENT, "a command with min > max")
    expect(hub.on_command("LED", print, 0), iothub.BAD_ARGUMENT, "a command with min only")
    expect(hub.field("u", "a unit far too long for the hub"), iothub.BAD_NAME, "a unit over 16 characters")
    expect(hub.loop(), iothub.CONNECT_FAILED, "loop(): nobody listens on port 1")
    expect(hub.loop(), iothub.WAITING, "loop() right after: backing off")
    check(all(iothub.name(s) != "?" for s in range(6)) and iothub.name(99) == "?", "statuses have names")
    expect(hub.end(), iothub.OK, "end()")
    expect(hub.loop(), iothub.NOT_STARTED, "loop() after end()")


# --- 2. a hostile peer ------------------------------------------------------------------------

class Peer:
    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.conn = None
        self.got = b""

    def accept(self, hub, seconds=2):
        def accepted():
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                return False
            self.close()
            conn.setblocking(False)
            self.conn, self.got = conn, b""
            return True
        return pump_until(hub, seconds, accepted)

    def close(self):
        if self.conn:
            self.conn.close()
        self.conn = None

    def say(self, data):
        self.conn.sendall(data)

    def drain(self):
        while self.conn:
            try:
                data = self.conn.recv(4096)
            except BlockingIOError:
                return
            if not data:
                return
            self.got += data

    def wait_for(self, hub, text, seconds=1, start=0):
        def seen():
            self.drain()
            return self.got.find(text, start) >= 0
        return pump_until(hub, seconds, seen)


def test_hostile_peer():
    print("# a hostile peer (a socket in this test, not the hub)")
    peer = Peer()
    led = Led()
    errors, lines = [], []
    hub = iothub.Hub("127.0.0.1", peer.port, "tok123", capacity=8, keepalive_ms=300,
                     backoff_ms=(50, 200), clock=None)
    hub.name = "Peer test"
    hub.field("temp", "°C")
    hub.on_command("LED", led, 0, 1)
    hub.on_error, hub.on_line = errors.append, lines.append
    hub.begin()
    check(peer.accept(hub), "the module connects")
    check(peer.wait_for(hub, b"sync=0\n"), "greeting ends with sync=0")
    greeting = ('token=tok123\n{"register":{"name":"Peer test","fields":[{"name":"temp","unit":"°C"}],'
                '"commands":[{"name":"LED","min":0,"max":1}]}}\nsync=0\n').encode()
    check(peer.got == greeting, "token, registration and sync, exactly: %r" % peer.got)
    mark = len(peer.got)
    hub.add("temp", 23.5)
    hub.add("x", -0.001)
    expect(hub.send(), iothub.OK, "send() while connected")
    peer.wait_for(hub, b"sync=1\n", start=mark)
    check(peer.got[mark:] == b"temp=23.5,x=-0.001\nsync=1\n", "one key=value line, then sync=1: %r" % peer.got[mark:])
    for value, text in ((42, b"42"), (1.5e12, b"1500000000000"), (0.1, b"0.1"), (-7.25, b"-7.25"), (2.5e-7, b"2.5e-07")):
        mark = len(peer.got)
        hub.add("temp", value)
        hub.send()
        check(peer.wait_for(hub, b"temp=" + text + b"\n", start=mark), "%r written as %s" % (value, text.decode()))
    check(hub.pending == 6, "6 readings pending, unconfirmed (%d)" % hub.pending)

    print("# garbage from the peer")
    mark = len(peer.got)
    peer.say(b"x" * 700 + b"\n")
    check(iothub.LINE_TOO_LONG in statuses_over(hub, 0.1), "a 700-byte line: line too long")
    peer.say(b"\x00\x01\xff\xfe garbage\n")
    check(iothub.BAD_MESSAGE in statuses_over(hub, 0.1), "a line that is not UTF-8: bad message")
    peer.say(b"stored=abc\nstored=-1\n")
    check(iothub.BAD_MESSAGE in statuses_over(hub, 0.1) and hub.pending == 6, "stored=abc, stored=-1: ignored")
    peer.say(b"LED=x,seq=1\nLED=1,seq=-5\nLED=1,seq=\nLED=nan,seq=4\n")
    check(iothub.BAD_MESSAGE in statuses_over(hub, 0.1) and led.calls == 0, "malformed commands: not run")
    peer.say(b"LED=5,seq=9\n")
    check(iothub.COMMAND_REFUSED in statuses_over(hub, 0.1) and led.calls == 0, "LED=5 outside 0..1: refused")
    peer.say(b"FOO=1,seq=10\n")
    check(iothub.UNKNOWN_COMMAND in statuses_over(hub, 0.1), "FOO without a handler: unknown command")
    peer.say(b'{"cmd":"LED","value":1}\n{"cmd":"LED","value":"on","seq":3}\n{{{{\n[1,2]\n')
    statuses_over(hub, 0.1)
    check(led.calls == 0, "JSON commands without seq or with a text value: not run")
    peer.say(b"error: you are wrong\n")
    check(iothub.HUB_ERROR in statuses_over(hub, 0.1) and errors == ["you are wrong"], "error: reaches on_error")
    check(len(lines) >= 3, "lines nobody understood reach on_line (%d)" % len(lines))
    peer.say(b"LED=1,seq=77,dur=250\n")
    check(peer.wait_for(hub, b"ack=77\n", start=mark), "a good command after all that is acknowledged")
    check(led.calls == 1 and led.value == 1 and led.duration == 250, "handler got LED=1 for 250 ms")
    peer.say(b'{"cmd":"LED","value":0,"seq":12345678901234567890}\n')
    check(peer.wait_for(hub, b"ack=12345678901234567890\n", start=mark), "a JSON command; a 20-digit seq echoed")
    peer.drain()
    acks = [line for line in peer.got[mark:].split(b"\n") if line.startswith(b"ack=")]
    check(acks == [b"ack=77", b"ack=12345678901234567890"], "no ack for any bad command: %r" % acks)

    def boom(value, duration):
        raise RuntimeError("handler bug")
    hub.on_command("BOOM", boom)
    peer.say(b"BOOM=1,seq=80\n")
    check(iothub.COMMAND_REFUSED in statuses_over(hub, 0.1) and hub.connected, "a handler that raises: refused, still connected")
    peer.say(b"stored=3\n")
    pump_until(hub, 0.1)
    check(hub.pending == 3, "stored=3 drops readings 1..3 (%d pending)" % hub.pending)
    peer.say(b"stored=4000\n")
    pump_until(hub, 0.1)
    check(hub.pending == 0, "stored= beyond what was sent drops only what was sent (%d)" % hub.pending)

    print("# the peer goes silent, then closes")
    before = hub.connections
    hub.add("temp", 1)
    hub.send()  # number 7: written, never confirmed
    check(wait_status(hub, iothub.CONNECTION_LOST, 2), "a peer that answers no keepalive for 3 rounds is dropped")
    check(peer.accept(hub) and hub.connections == before + 1, "and the module reconnects")
    check(peer.wait_for(hub, b"temp=1\nsync=7\n"), "the unconfirmed reading goes again: %r" % peer.got)
    peer.say(b"stored=7\n")
    pump_until(hub, 0.1)
    check(hub.pending == 0, "confirmed at last")
    peer.close()
    check(wait_status(hub, iothub.CONNECTION_LOST, 0.5), "a closed connection is noticed")

    print("# framed, hostile")
    fpeer = Peer()
    framed = iothub.Hub("127.0.0.1", fpeer.port, "tok", fmt=iothub.FRAMED)
    led = Led()
    framed.on_command("LED", led, 0, 1)
    framed.begin()
    check(fpeer.accept(framed), "framed: connects")
    fpeer.wait_for(framed, b"|START|SYNC=0|END|")
    check(fpeer.got == b"|START|TOKEN=tok|END||START|SYNC=0|END|", "framed: token then sync: %r" % fpeer.got)
    mark = len(fpeer.got)
    framed.add("temp", 21.5)
    framed.send()
    check(fpeer.wait_for(framed, b"|START|temp=21.5|END||START|SYNC=1|END|", start=mark), "framed reading and sync")
    fpeer.say(b"junk|START|nonsense|END|  |START|" + b"y" * 900 + b"|END|\r\n")
    check(iothub.LINE_TOO_LONG in statuses_over(framed, 0.1), "framed: a 900-byte frame is skipped")
    mark = len(fpeer.got)
    fpeer.say(b"|START|COMMAND=HELLO!|END|")
    check(fpeer.wait_for(framed, b"|START|COMMAND=HELLO!|END|", start=mark), "framed: the hub's HELLO! is answered")
    fpeer.say(b"|START|COMMAND=SET|LED=1|SEQ=5|DUR=100|END|")
    check(fpeer.wait_for(framed, b"|START|ACK=5|END|", start=mark), "framed: command acknowledged")
    fpeer.say(b"|START|COMMAND=SET|LED=1|END||START|COMMAND=SET|LED=1|SEQ=x|END|")
    statuses_over(framed, 0.1)
    check(led.calls == 1 and led.duration == 100, "framed: handler ran once, for 100 ms")
    fpeer.say(b"|START|STORED=1|END|")
    pump_until(framed, 0.1)
    check(framed.pending == 0, "framed: STORED=1 confirms the reading")
    # Our own HELLO! gets the hub's answer, which must not be answered again: the two ends
    # would greet each other for ever.
    framed.keepalive_ms = 300
    mark = len(fpeer.got)
    check(fpeer.wait_for(framed, b"|START|COMMAND=HELLO!|END|", start=mark), "framed: a keepalive HELLO! after 300 ms of quiet")
    fpeer.say(b"|START|COMMAND=HELLO!|END|")
    mark = len(fpeer.got)
    pump_until(framed, 0.15)
    fpeer.drain()
    check(len(fpeer.got) == mark, "framed: the answer to our HELLO! is not answered (%r)" % fpeer.got[mark:])


# --- 3. the real hub ---------------------------------------------------------------------------

def api(method, path, body=None):
    request = urllib.request.Request(os.environ["IOTHUB_HTTP"] + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Authorization", "Bearer " + os.environ["IOTHUB_API_TOKEN"])
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def stored_readings(device):
    _status, rows = api("GET", "/api/v1/devices/%s/readings?since_ms=0&limit=10000" % device)
    out = []
    for row in rows or []:
        values = {v["field"]: v["value"] for v in row["values"]}
        out.append((values.get("counter"), row["device_ms"], row["received_ms"]))
    return out


def command_acked(hub, seq):
    return pump_until(hub, 3, lambda: api("GET", "/api/v1/commands/%d" % seq)[1].get("status") == "acked")


def test_real_hub_lines(port):
    device, token = os.environ["IOTHUB_PY_LINES_ID"], os.environ["IOTHUB_PY_LINES_TOKEN"]
    print("# the real hub, line protocol, device %s" % device)
    led = Led()
    errors = []
    hub = iothub.Hub("127.0.0.1", port, token, capacity=128, backoff_ms=(100, 1000))
    hub.name = "MicroPython test"
    hub.field("counter")
    hub.field("temp", "°C")
    hub.on_command("LED", led, 0, 1)
    hub.on_error = errors.append
    expect(hub.begin(), iothub.OK, "begin()")
    if not check(pump_until(hub, 5, lambda: hub.connected), "connects to the hub"):
        return
    taken = {}
    counter = [0]

    def take(offline=None):
        counter[0] += 1
        c = counter[0]
        hub.add("counter", c)
        hub.add("temp", 20 + (c % 10) * 0.5)
        taken[c] = iothub.wall_ms()
        online = hub.connected
        hub.send()
        if offline is not None and not online:
            offline.add(c)

    for _ in range(10):
        take()
        pump_until(hub, 0.03)
    if not check(pump_until(hub, 5, lambda: hub.pending == 0),
                 "stored= confirms the first 10 readings (%d pending)" % hub.pending):
        print("# the hub did not answer sync=<n> with stored=<n>: this iothub binary lacks stored "
              "acknowledgements (rebuild it: cargo build -p server --bin iothub)")
        return
    check(not errors, "no error lines from the hub %r" % errors[:1])
    status, info = api("GET", "/api/v1/devices/" + device)
    check(status == 200 and info["online"], "the hub shows the device online")
    reg = (info or {}).get("registration") or {}
    check(reg.get("name") == "MicroPython test"
          and {"name": "temp", "unit": "°C"} in reg.get("fields", [])
          and any(c["name"] == "LED" and c["min"] == 0 and c["max"] == 1 for c in reg.get("commands", [])),
          "registration stored: name, temp in °C, LED 0..1")
    rows = stored_readings(device)
    check(len(rows) == 10 and all(abs(d - taken[int(c)]) < 100 for c, d, _r in rows),
          "10 readings stored with their device times")

    print("# a command through the REST API")
    status, sent = api("POST", "/api/v1/commands",
                       {"target": {"device": device}, "variable": "LED", "value": 1, "duration_ms": 1500})
    seq = sent[0]["seq"] if status == 200 else -1
    check(status == 200 and seq > 0, "POST /api/v1/commands: %d, seq %d" % (status, seq))
    check(pump_until(hub, 3, lambda: led.calls == 1) and led.value == 1 and led.duration == 1500,
          "the LED handler ran with 1 for 1500 ms")
    check(command_acked(hub, seq), "GET /api/v1/commands/%d says acked" % seq)
    status, _ = api("POST", "/api/v1/commands",
                    {"target": {"device": device}, "variable": "LED", "value": 7, "duration_ms": None})
    check(status == 400, "LED=7 is refused by the hub from the registered range (%d)" % status)

    print("# 10 s of silence from the program (keepalive only)")
    since = api("GET", "/api/v1/devices/" + device)[1]["connected_since_ms"]
    connects = hub.connections
    pump_until(hub, 10)
    info = api("GET", "/api/v1/devices/" + device)[1]
    check(hub.connected and hub.connections == connects, "the same connection after 10 s (%d connects)" % hub.connections)
    check(info["online"] and info["connected_since_ms"] == since, "the hub has it online since the same moment")

    print("# the hub stopped and restarted mid-stream")
    offline = set()
    before_restart = counter[0]
    last = [0.0]

    def stream(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if time.monotonic() - last[0] >= 0.1:
                take(offline)
                last[0] = time.monotonic()
            hub.loop()
            time.sleep(0.002)

    def run_ctl(action, limit):
        process = subprocess.Popen(os.environ["IOTHUB_CTL"] + " " + action, shell=True)
        end = time.monotonic() + limit
        while process.poll() is None and time.monotonic() < end:
            stream(0.02)
        return process.poll()

    stream(1)
    check(run_ctl("stop", 20) == 0, "the hub stopped")
    stream(2)
    check(run_ctl("start", 30) == 0, "the hub started again on the same port and data")
    stream(2)
    total = counter[0]
    check(pump_until(hub, 10, lambda: hub.pending == 0), "every reading confirmed after the restart (%d pending)" % hub.pending)
    check(hub.connections > connects, "the module reconnected by itself (%d connects)" % hub.connections)
    check(len(offline) > 0, "%d readings were taken while the hub was down" % len(offline))
    pump_until(hub, 0.3)
    rows = stored_readings(device)
    copies = {}
    for c, d, r in rows:
        copies.setdefault(int(c), []).append((d, r))
    missing = [c for c in range(1, total + 1) if c not in copies]
    doubled = [c for c, v in copies.items() if len(v) > 1]
    check(not missing, "no reading lost (1..%d; missing %s)" % (total, missing))
    check(not doubled, "no reading stored twice (duplicates %s)" % doubled)
    check(len(rows) == total, "%d rows stored for %d readings taken" % (len(rows), total))
    bad = [c for c in offline if c in copies and not (abs(copies[c][0][0] - taken[c]) < 100 and copies[c][0][1] >= copies[c][0][0])]
    check(not bad, "readings taken offline are stored with the times they were taken %s" % bad[:5])
    longest = max([copies[c][0][1] - copies[c][0][0] for c in offline if c in copies] or [0])
    check(longest > 1500, "and arrived later: the oldest %d ms after it was taken" % longest)
    check(total > before_restart + 30, "the stream went on through the restart (%d readings)" % (total - before_restart))


def test_real_hub_framed(port):
    device, token = os.environ["IOTHUB_PY_FRAMED_ID"], os.environ["IOTHUB_PY_FRAMED_TOKEN"]
    print("# the real hub, framed protocol, device %s" % device)
    led = Led()
    errors = []
    hub = iothub.Hub("127.0.0.1", port, token, fmt=iothub.FRAMED, capacity=16)
    hub.on_command("LED", led, 0, 1)
    hub.on_error = errors.append
    expect(hub.begin(), iothub.OK, "begin()")
    if not check(pump_until(hub, 5, lambda: hub.connected), "connects"):
        return
    for i in range(1, 6):
        hub.add("counter", i)
        hub.add("temp", 21.5)
        hub.send()
        pump_until(hub, 0.02)
    check(pump_until(hub, 5, lambda: hub.pending == 0), "STORED confirms 5 framed readings (%d pending)" % hub.pending)
    rows = stored_readings(device)
    check(sorted(int(c) for c, _d, _r in rows) == [1, 2, 3, 4, 5], "5 readings stored once each (%d rows)" % len(rows))
    status, sent = api("POST", "/api/v1/commands",
                       {"target": {"device": device}, "variable": "LED", "value": 0, "duration_ms": None})
    seq = sent[0]["seq"] if status == 200 else -1
    check(pump_until(hub, 3, lambda: led.calls == 1) and led.value == 0, "framed command reached the handler")
    check(command_acked(hub, seq), "framed command %d acked" % seq)
    connects = hub.connections
    pump_until(hub, 8)  # the hub drops a framed device silent for 2 x 3 s
    check(hub.connected and hub.connections == connects, "8 s of silence survived with HELLO! keepalives")
    check(api("GET", "/api/v1/devices/" + device)[1]["online"], "the hub has it online")
    check(not errors, "no error frames from the hub %r" % errors[:1])


def main():
    test_misuse()
    test_hostile_peer()
    port = os.environ.get("IOTHUB_TCP_PORT")
    if port:
        test_real_hub_lines(int(port))
        test_real_hub_framed(int(port))
    else:
        print("# IOTHUB_TCP_PORT not set: the tests against the real hub did not run")
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
