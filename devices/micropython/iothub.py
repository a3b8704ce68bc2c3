"""iothub: the device side of the iothub raw TCP protocol, for MicroPython (ESP32) and CPython 3.

The same protocol and behaviour as the Arduino library (devices/arduino/IoTHub):

    hub = iothub.Hub("192.168.1.10", 5070, token="iot_...")
    hub.field("temp", "°C")
    hub.on_command("RELAY", set_relay, 0, 1)     # set_relay(value, duration_ms); False refuses
    while True:
        hub.loop()                                # connects, reads, keeps alive, resends
        if time_for_a_reading():
            hub.add("temp", read_temp())
            hub.send()                            # kept until the hub says stored=

Readings stay in a bounded buffer until the hub answers ``stored=<n>`` to a ``sync=<n>`` sent
after them, so readings taken offline (or lost with a dropped connection) go out after the next
connect, with the device time they were taken when the board's clock is set (``ntptime``).
Every public call returns a status (``OK``, ``QUEUED``, ``BAD_NAME``, … ; ``name(status)``
gives its name); none raises for bad input or a bad network.

Transport: plain TCP or TLS (``use_ssl=True``, for a hub with ``--tcp-tls``), lines or
``|START|…|END|`` frames (``fmt=FRAMED``). No WebSocket: the raw TCP port is what a small
board handles best.
"""

try:  # MicroPython
    import utime as time

    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add  # MicroPython's ticks wrap (at 2**30 ms on an ESP32)
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

try:
    import usocket as socket
except ImportError:
    import socket

try:
    import uerrno as errno
except ImportError:
    import errno

try:
    import urandom as random
except ImportError:
    import random


OK = 0
QUEUED = 1
DROPPED_OLDEST = 2
WAITING = 3
CONNECTED = 4
COMMAND_DONE = 5
ERRORS = 16  # statuses from here on mean the call did not do what was asked
NOT_STARTED = 16
BAD_ARGUMENT = 17
BAD_NAME = 18
BAD_VALUE = 19
NO_VALUES = 20
TOO_MANY_VALUES = 21
TOO_MANY_FIELDS = 22
TOO_MANY_COMMANDS = 23
CONNECT_FAILED = 24
CONNECTION_LOST = 25
HUB_ERROR = 26
LINE_TOO_LONG = 27
UNKNOWN_COMMAND = 28
COMMAND_REFUSED = 29
BAD_MESSAGE = 30

_NAMES = {
    OK: "ok", QUEUED: "queued", DROPPED_OLDEST: "dropped oldest", WAITING: "waiting",
    CONNECTED: "connected", COMMAND_DONE: "command done", NOT_STARTED: "not started",
    BAD_ARGUMENT: "bad argument", BAD_NAME: "bad name", BAD_VALUE: "bad value",
    NO_VALUES: "no values", TOO_MANY_VALUES: "too many values",
    TOO_MANY_FIELDS: "too many fields", TOO_MANY_COMMANDS: "too many commands",
    CONNECT_FAILED: "connect failed", CONNECTION_LOST: "connection lost",
    HUB_ERROR: "hub error", LINE_TOO_LONG: "line too long",
    UNKNOWN_COMMAND: "unknown command", COMMAND_REFUSED: "command refused",
    BAD_MESSAGE: "bad message",
}

# Formats of readings.
AUTO = 0       # key=value; JSON when the reading has a device time (the hub reads `ts` only there)
KEY_VALUE = 1  # always key=value, no device times
JSON = 2
CSV = 3        # the classic `ID,v1,v2` (needs device_id), no device times
FRAMED = 4     # |START|temp=23.5|END| frames: no registration, no device times

_HELLO = b"|START|COMMAND=HELLO!|END|"
_RESERVED = ("id", "ack", "sync", "ts", "register", "token")
_RESYNC_MS = 2000      # a sync without its stored= is sent again after this long
_RATE_BURST = 20       # our own limit, under the hub's 100 messages/s per device
_RATE_EVERY_MS = 25
_MIN_CLOCK_S = 1609459200  # 2021-01-01: a clock before that was never set
# MicroPython ports whose epoch is 2000 (older ESP32 builds) need this added.
_EPOCH_SHIFT = 946684800 if time.gmtime(0)[0] == 2000 else 0
_WOULD_BLOCK = (getattr(errno, "EAGAIN", 11), getattr(errno, "EWOULDBLOCK", 11))


def name(status):
    """A short English name for a status."""
    return _NAMES.get(status, "?")


def _valid_field(n):
    if not isinstance(n, str) or not n or len(n) > 64 or n[0] == "{":
        return False
    for c in n:
        if ord(c) < 0x21 or c in ',=|"\\\x7f':
            return False
    return n.lower() not in _RESERVED


def _valid_command(n):
    if not isinstance(n, str) or not 0 < len(n) <= 32:
        return False
    if not (n[0].isalpha() or n[0] == "_"):
        return False
    for c in n:
        if not (c.isalpha() or c.isdigit() or c == "_") or ord(c) > 127:
            return False
    return True


def _valid_wire(text):
    if not isinstance(text, str) or not text:
        return False
    for c in text:
        if ord(c) < 0x20 or c in '|,"\\\x7f':
            return False
    return True


def _json_string(s):
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20:
            out.append("\\u%04x" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _number(v):
    """A value as the hub reads it: whole numbers without a point, no exponent surprises."""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def _finite(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    if v != v or v in (float("inf"), float("-inf")):
        return None
    return v


def wall_ms():
    """ms since 1970 from the board's clock, or None if the clock was never set."""
    if hasattr(time, "time_ns"):
        ms = time.time_ns() // 1000000
    else:
        ms = int(time.time() * 1000)
    ms += _EPOCH_SHIFT * 1000
    return ms if ms >= _MIN_CLOCK_S * 1000 else None


class Hub:
    def __init__(self, host, port=5070, token=None, device_id=None, fmt=AUTO, capacity=64,
                 max_values=8, keepalive_ms=5000, backoff_ms=(500, 30000), use_ssl=False,
                 rx_bytes=512, clock=wall_ms):
        """Nothing is checked or connected here: begin() checks, loop() connects."""
        self.host, self.port, self.token, self.device_id = host, port, token, device_id
        self.fmt, self.capacity, self.max_values = fmt, capacity, max_values
        self.keepalive_ms, self.backoff_ms, self.use_ssl = keepalive_ms, backoff_ms, use_ssl
        self.rx_bytes, self.clock = rx_bytes, clock
        self.name = None
        self.on_error = None  # fn(text): the hub's `error: …` lines
        self.on_line = None   # fn(text): lines nobody understood (the dashboard's console)
        self._fields = []     # [name, unit]
        self._commands = {}   # lower-case name → (name, fn, min, max)
        self._ring = []       # [number, ts_ms or None, [(name, value), …]], oldest first
        self._head = 1        # number of the oldest reading kept
        self._staged = []
        self._staged_dropped = False
        self._sock = None
        self._started = False
        self._sent = 0
        self._attempts = 0
        self._next_attempt = ticks_ms()
        self._accepted = False
        self._hello_out = False
        self._rx = b""
        self._skipping = False
        self._tx = []
        self._write_failed = False
        self.connections = 0
        self.dropped = 0

    # --- set-up -------------------------------------------------------------------------

    def begin(self):
        """Checks the settings; loop() then connects. BAD_ARGUMENT names nothing: see the docs."""
        if not isinstance(self.host, str) or not self.host or not isinstance(self.port, int):
            return BAD_ARGUMENT
        if not 0 < self.port < 65536 or self.fmt not in (AUTO, KEY_VALUE, JSON, CSV, FRAMED):
            return BAD_ARGUMENT
        if self.token is not None and not _valid_wire(self.token):
            return BAD_ARGUMENT
        if self.device_id is not None and (not _valid_wire(self.device_id) or "=" in self.device_id):
            return BAD_ARGUMENT
        if self.token is None and self.device_id is None:
            return BAD_ARGUMENT  # a tokenless device names itself
        if self.fmt == CSV and self.device_id is None:
            return BAD_ARGUMENT
        if not (isinstance(self.capacity, int) and 0 < self.capacity <= 10000):
            return BAD_ARGUMENT
        if not (isinstance(self.keepalive_ms, int) and 100 <= self.keepalive_ms <= 60000):
            return BAD_ARGUMENT
        low, high = self.backoff_ms
        if not 0 < low <= high <= 3600000:
            return BAD_ARGUMENT
        self._started = True
        self._next_attempt = ticks_ms()
        return OK

    def field(self, field_name, unit=None):
        if unit is not None and (not isinstance(unit, str) or len(unit) > 16):
            return BAD_NAME
        i = self._field_index(field_name)
        if i < 0:
            return BAD_NAME if i == -1 else TOO_MANY_FIELDS
        self._fields[i][1] = unit
        return OK

    def on_command(self, command, fn, min=None, max=None):
        """fn(value, duration_ms) runs for each command; the ack goes after it returns, unless
        it returns False (or raises): then the hub times the command out."""
        if not _valid_command(command):
            return BAD_NAME
        if not callable(fn):
            return BAD_ARGUMENT
        if (min is None) != (max is None):
            return BAD_ARGUMENT
        if min is not None:
            min, max = _finite(min), _finite(max)
            if min is None or max is None or min > max:
                return BAD_ARGUMENT
        if command.lower() not in self._commands and len(self._commands) >= 32:
            return TOO_MANY_COMMANDS
        self._commands[command.lower()] = (command, fn, min, max)
        return OK

    def _field_index(self, field_name):
        if not _valid_field(field_name):
            return -1
        for i, f in enumerate(self._fields):
            if f[0] == field_name:
                return i
        if len(self._fields) >= 64:  # the hub's --max-fields default
            return -2
        self._fields.append([field_name, None])
        return len(self._fields) - 1

    # --- readings -----------------------------------------------------------------------

    def add(self, field_name, value):
        if not self._started:
            return NOT_STARTED
        v = _finite(value)
        if v is None:
            return BAD_VALUE
        i = self._field_index(field_name)
        if i < 0:
            return BAD_NAME if i == -1 else TOO_MANY_FIELDS
        for pair in self._staged:
            if pair[0] == field_name:  # the hub refuses a field twice in one reading
                pair[1] = v
                return OK
        if len(self._staged) >= self.max_values:
            return TOO_MANY_VALUES
        self._staged.append([field_name, v])
        return OK

    def discard(self):
        self._staged = []
        return OK

    def send(self):
        """Keeps the reading added so far (stamped now) and writes it if connected."""
        if not self._started:
            return NOT_STARTED
        if not self._staged:
            return NO_VALUES
        kept = QUEUED
        if len(self._ring) >= self.capacity:
            # Full: the newest readings matter more than the oldest.
            self._drop(1)
            self.dropped += 1
            kept = DROPPED_OLDEST
        ts = self.clock() if self.clock else None
        self._ring.append([self._head + len(self._ring), ts, self._staged])
        self._staged = []
        if self._sock is None:
            return kept
        before = self._sent
        self._flush_readings(ticks_ms())
        if self._write_failed:
            self._drop_connection()
            return kept
        if self._sent > before and self._sent == len(self._ring) and kept == QUEUED:
            return OK
        return kept

    @property
    def pending(self):
        """Readings kept until the hub has stored them."""
        return len(self._ring)

    @property
    def connected(self):
        return self._sock is not None

    def _drop(self, n):
        n = min(n, len(self._ring))
        del self._ring[:n]
        self._head += n
        self._sent = max(0, self._sent - n)

    # --- the connection -----------------------------------------------------------------

    def loop(self):
        """Call often: connects, reads, handles commands, keeps alive, sends what waits."""
        if not self._started:
            return NOT_STARTED
        now = ticks_ms()
        result = OK
        if self._sock is None:
            if ticks_diff(now, self._next_attempt) < 0:
                return WAITING
            result = self._connect()
            if result != CONNECTED:
                return result
            now = ticks_ms()
        result = _note(result, self._receive(now))
        if self._sock is None:
            return result
        if self._write_failed:
            self._drop_connection()
            return _note(result, CONNECTION_LOST)
        now = ticks_ms()
        # A hub that answers none of three keepalives is gone (a half-open connection would
        # otherwise look alive until the TCP stack gives up, minutes later).
        if ticks_diff(now, self._last_rx) >= 3 * self._keepalive():
            self._drop_connection()
            return _note(result, CONNECTION_LOST)
        quiet = ticks_diff(now, self._last_tx) >= self._keepalive()
        resync = self._sent > 0 and ticks_diff(now, self._sync_at) >= _RESYNC_MS
        if self._flush_readings(now) == 0 and (quiet or resync):
            # In lines a sync is the keepalive: answered by stored=, it proves the hub is there.
            if self.fmt == FRAMED and not resync:
                self._put(_HELLO)
                self._hello_out = True
            else:
                self._sync()
            self._flush_out()
        if self._write_failed:
            self._drop_connection()
            result = _note(result, CONNECTION_LOST)
        return result

    def stop(self):
        if not self._started:
            return NOT_STARTED
        if self._sock is not None:
            self._drop_connection()
        return OK

    def end(self):
        if self._sock is not None:
            self._close()
        self._started = False
        return OK

    def _keepalive(self):
        # A framed device under the hub's --tcp-keepalive-ms (3 s) is never probed, so the two
        # sides' HELLO!s do not cross.
        return min(self.keepalive_ms, 2000) if self.fmt == FRAMED else self.keepalive_ms

    def _connect(self):
        sock = None
        try:
            info = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
            sock = socket.socket(info[0], info[1], info[2])
            addr = info[-1]
            sock.settimeout(5)
            sock.connect(addr)
            if self.use_ssl:
                sock = _wrap_ssl(sock, self.host)
            sock.setblocking(False)
        except Exception:  # any failure to connect is the same to a device: retry later
            if sock is not None:
                try:
                    sock.close()
                except Exception:
                    pass
            self._schedule_retry()
            return CONNECT_FAILED
        self._sock = sock
        self.connections += 1
        now = ticks_ms()
        self._sent = 0
        self._rx = b""
        self._skipping = False
        self._tx = []
        self._hello_out = False
        self._accepted = False
        self._write_failed = False
        self._last_rx = self._last_tx = self._sync_at = self._tokens_at = now
        self._tokens = _RATE_BURST
        framed = self.fmt == FRAMED
        if self.token is not None:
            self._put(("|START|TOKEN=%s|END|" if framed else "token=%s\n") % self.token)
        if not framed:
            self._register()
        # Answered once the hub has let us in, which restarts the backoff; without a token it
        # also names the device.
        self._sync()
        self._flush_out()
        if self._write_failed:
            self._drop_connection()
            return CONNECTION_LOST
        return CONNECTED

    def _close(self):
        try:
            self._sock.close()
        except Exception:
            pass
        self._sock = None

    def _drop_connection(self):
        self._close()
        # Everything unconfirmed goes again next time: only a stored= says the hub has it.
        self._sent = 0
        self._tx = []
        self._rx = b""
        # A connection the hub had accepted ended like a network hiccup: retry soon. One it
        # closed at once (a bad token) keeps backing off.
        if self._accepted:
            self._attempts = 0
        self._schedule_retry()

    def _schedule_retry(self):
        low, high = self.backoff_ms
        delay = min(high, low << min(self._attempts, 20))
        # Equal jitter: half the delay, plus a random half, so boards cut off together do not
        # come back in lockstep.
        half = delay // 2
        self._next_attempt = ticks_add(ticks_ms(), half + random.getrandbits(16) * (half + 1) // 65536)
        self._attempts = min(self._attempts + 1, 255)

    # --- sending ------------------------------------------------------------------------

    def _register(self):
        if self.name is None and not self._fields and not self._commands:
            return
        reg = []
        if self.name is not None:
            reg.append('"name":' + _json_string(self.name))
        if self._fields:
            fs = []
            for n, unit in self._fields:
                f = '{"name":' + _json_string(n)
                if unit is not None:
                    f += ',"unit":' + _json_string(unit)
                fs.append(f + "}")
            reg.append('"fields":[' + ",".join(fs) + "]")
        if self._commands:
            cs = []
            for n, _fn, lo, hi in self._commands.values():
                c = '{"name":' + _json_string(n)
                if lo is not None:
                    c += ',"min":%s,"max":%s' % (_number(lo), _number(hi))
                cs.append(c + "}")
            reg.append('"commands":[' + ",".join(cs) + "]")
        ident = '"id":%s,' % _json_string(self.device_id) if self.token is None else ""
        self._put("{%s\"register\":{%s}}\n" % (ident, ",".join(reg)))

    def _sync(self):
        # n: the newest reading written on this connection (or the one before the oldest
        # kept): stored=n then covers exactly what was sent before it.
        n = self._head + self._sent - 1
        naming = self.token is None and not self._accepted
        if self.fmt == FRAMED:
            self._put("|START|%sSYNC=%d|END|" % ("ID=%s|" % self.device_id if naming else "", n))
        else:
            self._put("%ssync=%d\n" % ("id=%s," % self.device_id if naming else "", n))
        self._sync_at = ticks_ms()

    def _take_token(self, now):
        elapsed = ticks_diff(now, self._tokens_at)
        if elapsed >= _RATE_EVERY_MS:
            self._tokens = min(_RATE_BURST, self._tokens + elapsed // _RATE_EVERY_MS)
            self._tokens_at = now
        if self._tokens == 0:
            return False
        self._tokens -= 1
        return True

    def _flush_readings(self, now):
        # The readings and their sync go in one write: a hub stopping between a reading and
        # its sync would store the one and never answer the other, and the reading would come
        # twice.
        wrote = 0
        while self._sent < len(self._ring) and self._take_token(now):
            self._put(self._reading_text(self._ring[self._sent]))
            self._sent += 1
            wrote += 1
        if wrote:
            self._sync()
        self._flush_out()
        return wrote

    def _reading_text(self, reading):
        _number_, ts, values = reading
        fmt = self.fmt
        if fmt == AUTO:
            fmt = JSON if ts is not None else KEY_VALUE
        if fmt == JSON:
            parts = ['"%s":%s' % (n, _number(v)) for n, v in values]
            if ts is not None:
                parts.append('"ts":%d' % ts)
            return "{" + ",".join(parts) + "}\n"
        if fmt == CSV:
            return self.device_id + "," + ",".join(_number(v) for _n, v in values) + "\n"
        if fmt == FRAMED:
            return "|START|" + "".join("%s=%s|" % (n, _number(v)) for n, v in values) + "END|"
        return ",".join("%s=%s" % (n, _number(v)) for n, v in values) + "\n"

    def _put(self, text):
        self._tx.append(text if isinstance(text, bytes) else text.encode())

    def _flush_out(self):
        if not self._tx:
            return
        data = b"".join(self._tx)
        self._tx = []
        if self._sock is None or self._write_failed:
            return
        self._last_tx = ticks_ms()
        sent = 0
        deadline = ticks_add(ticks_ms(), 5000)  # a peer that takes nothing for 5 s is gone
        while sent < len(data):
            try:
                n = _send(self._sock, data[sent:])
            except OSError as e:
                if _would_block(e) and ticks_diff(deadline, ticks_ms()) > 0:
                    _sleep_ms(5)
                    continue
                self._write_failed = True
                return
            if n is None or n <= 0:
                if ticks_diff(deadline, ticks_ms()) <= 0:
                    self._write_failed = True
                    return
                _sleep_ms(5)
                continue
            sent += n

    # --- receiving ----------------------------------------------------------------------

    def _receive(self, now):
        result = OK
        for _ in range(8):  # a bounded amount per loop(): a flood cannot starve the program
            try:
                data = self._sock.recv(256)
            except OSError as e:
                if _would_block(e):
                    break
                self._drop_connection()
                return _note(result, CONNECTION_LOST)
            if data is None:  # MicroPython's non-blocking TLS socket: nothing yet
                break
            if not data:
                self._drop_connection()
                return _note(result, CONNECTION_LOST)
            self._last_rx = now
            self._rx += data
            result = _note(result, self._split())
            if self._sock is None:
                break
        return result

    def _split(self):
        result = OK
        if self.fmt == FRAMED:
            while True:
                self._rx = self._rx.lstrip()
                end = self._rx.find(b"|END|")
                if end < 0:
                    if len(self._rx) > self.rx_bytes:
                        # Keep only what may be the start of "|END|".
                        self._rx = self._rx[-4:]
                        self._skipping = True
                    break
                frame, self._rx = self._rx[:end + 1], self._rx[end + 5:]
                if self._skipping or len(frame) > self.rx_bytes:
                    self._skipping = False
                    result = _note(result, LINE_TOO_LONG)
                    continue
                start = frame.find(b"|START|")
                if start < 0:
                    result = _note(result, BAD_MESSAGE)
                    continue
                result = _note(result, self._message(frame[start + 7:], "|"))
            return result
        while True:
            end = self._rx.find(b"\n")
            if end < 0:
                if len(self._rx) > self.rx_bytes:
                    self._rx = self._rx[:self.rx_bytes]
                    self._skipping = True
                break
            line, self._rx = self._rx[:end], self._rx[end + 1:]
            if self._skipping or len(line) > self.rx_bytes:
                self._skipping = False
                if line.startswith(b"error:"):  # still worth its first part
                    self._error(line[:self.rx_bytes])
                result = _note(result, LINE_TOO_LONG)
                continue
            line = line.rstrip(b"\r")
            if line.strip():
                result = _note(result, self._message(line, ","))
        return result

    def _error(self, raw):
        try:
            text = raw.decode()
        except Exception:
            text = repr(raw)
        if self.on_error:
            self.on_error(text[6:].strip() if text.startswith("error:") else text)
        return HUB_ERROR

    def _message(self, raw, sep):
        try:
            text = raw.decode()
        except Exception:  # not UTF-8: nothing the hub would send
            return BAD_MESSAGE
        if sep == "," and text.startswith("error:"):
            return self._error(raw)
        if sep == "," and text.startswith("{"):
            return self._json(text)
        pairs = []
        for part in text.split(sep):
            if part.strip():
                k, _eq, v = part.partition("=")
                pairs.append((k.strip(), v.strip()))
        keys = {}
        for k, v in pairs:
            keys.setdefault(k.lower(), v)
        if sep == "|" and keys.get("command", "").lower() == "hello!":
            return self._hello()
        if "stored" in keys:
            return self._stored(keys["stored"])
        if sep == "|" and "error" in keys:
            if self.on_error:
                self.on_error(keys["error"])
            return HUB_ERROR
        is_command = "seq" in keys and (sep == "," or keys.get("command", "").lower() == "set")
        if is_command:
            for k, v in pairs:
                if k.lower() not in ("seq", "dur", "command"):
                    return self._command(k, v, keys["seq"], keys.get("dur"))
        if self.on_line:
            self.on_line(text)
        return OK

    def _json(self, text):
        try:
            import json
        except ImportError:
            import ujson as json
        try:
            obj = json.loads(text)
        except Exception:
            obj = None
        if not isinstance(obj, dict):
            if self.on_line:
                self.on_line(text)
            return OK
        if "stored" in obj:
            return self._stored(str(obj["stored"]))
        if "cmd" in obj and "seq" in obj and "value" in obj:
            dur = obj.get("dur")
            return self._command(str(obj["cmd"]), str(obj["value"]), str(obj["seq"]),
                                 None if dur is None else str(dur))
        if self.on_line:
            self.on_line(text)
        return OK

    def _hello(self):
        # The hub answers our HELLO! and sends its own to a quiet device; answering its answer
        # would start an endless exchange, so only an unprompted one is answered.
        if self._hello_out:
            self._hello_out = False
        else:
            self._put(_HELLO)
            self._flush_out()
        return OK

    def _stored(self, digits):
        if not digits.isdigit() or len(digits) > 20:
            return BAD_MESSAGE
        n = int(digits)
        self._accepted = True
        self._attempts = 0
        # Covers what was written on this connection up to n, never more: a reading not yet
        # written cannot have been stored.
        covered = min(n - self._head + 1, self._sent)
        if covered > 0:
            self._drop(covered)
        return OK

    def _command(self, command, value, seq, dur):
        if not seq.isdigit() or len(seq) > 20:
            return BAD_MESSAGE
        v = _finite(value) if value.strip() else None
        if v is None:
            return BAD_MESSAGE
        duration = 0
        if dur is not None:
            if not dur.isdigit():
                return BAD_MESSAGE
            duration = int(dur)
        entry = self._commands.get(command.lower())
        if entry is None:
            return UNKNOWN_COMMAND
        _name, fn, lo, hi = entry
        if lo is not None and not lo <= v <= hi:
            return COMMAND_REFUSED
        try:
            done = fn(v, duration)
        except Exception:  # a failing handler must not take the connection down with it
            return COMMAND_REFUSED
        if done is False:
            return COMMAND_REFUSED
        # Acknowledged only now: an ack says the device did it, not that it heard of it.
        self._put(("|START|ACK=%s|END|" if self.fmt == FRAMED else "ack=%s\n") % seq)
        self._flush_out()
        return COMMAND_DONE


def _sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


def _note(result, status):
    # An error outweighs news; the latest error wins.
    if status >= ERRORS or (result < ERRORS and status != OK):
        return status
    return result


def _would_block(e):
    if type(e).__name__ in ("SSLWantReadError", "SSLWantWriteError", "BlockingIOError"):
        return True
    code = e.args[0] if e.args else None
    return getattr(e, "errno", code) in _WOULD_BLOCK or code in _WOULD_BLOCK


def _send(sock, data):
    send = getattr(sock, "send", None) or sock.write
    return send(data)


def _wrap_ssl(sock, host):
    try:
        import ssl
    except ImportError:
        import ussl as ssl
    if hasattr(ssl, "create_default_context"):  # CPython
        return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    return ssl.wrap_socket(sock, server_hostname=host)
