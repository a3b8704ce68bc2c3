// The Arduino library, built for Linux with PosixClient, tested three ways:
//  1. misuse of the API, with no network: every bad call gets its status, nothing crashes;
//  2. a hostile peer (a socket in this program, not a hub): what the library writes byte for
//     byte, and garbage, bogus numbers and silence thrown at it;
//  3. the real hub (started by devices/test.sh): registration, readings stored and confirmed
//     by stored=, a command through the REST API acknowledged, 10 s of silence survived, and
//     the hub stopped and restarted mid-stream without a reading lost or duplicated; then the
//     same for a framed (|START|…|END|) device.
//
// Environment (set by devices/test.sh): IOTHUB_TCP_PORT, IOTHUB_HTTP (http://127.0.0.1:port),
// IOTHUB_API_TOKEN, IOTHUB_LINES_ID/TOKEN, IOTHUB_FRAMED_ID/TOKEN, IOTHUB_CTL (a command taking
// `stop` or `start`). Without IOTHUB_TCP_PORT only parts 1 and 2 run.
//
// Prints one line per check and ends with "N passed, N failed"; exits 1 if any failed.

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "IoTHub.h"
#include "PosixClient.h"

static int passed = 0, failed = 0;

static bool check(bool ok, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  printf("%s - ", ok ? "ok" : "FAIL");
  vprintf(fmt, args);
  printf("\n");
  fflush(stdout);
  va_end(args);
  (ok ? passed : failed)++;
  return ok;
}

static const char* name(IoTHubStatus s) { return iothubStatusName(s); }

// Wire text on one line of the report.
static std::string show(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out;
}

static bool expect(IoTHubStatus got, IoTHubStatus want, const char* what) {
  return check(got == want, "%s: %s (expected %s)", what, name(got), name(want));
}

static uint64_t wallMs() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return (uint64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

// Runs the hub's loop() until `done` or `ms` have passed; true if done.
static bool pumpUntil(IoTHub& hub, uint32_t ms, const std::function<bool()>& done) {
  uint32_t start = millis();
  while (millis() - start < ms) {
    hub.loop();
    if (done()) return true;
    delay(2);
  }
  return done();
}

static void pump(IoTHub& hub, uint32_t ms) {
  pumpUntil(hub, ms, [] { return false; });
}

// ---------------------------------------------------------------------------------------
// Command handlers record what reached them.

static int ledCalls = 0;
static float ledValue = -1;
static uint32_t ledDuration = 0;
static bool onLed(float value, uint32_t durationMs) {
  ledCalls++;
  ledValue = value;
  ledDuration = durationMs;
  return true;
}

static std::vector<std::string> hubErrors, otherLines;
static void onError(const char* text) { hubErrors.push_back(text); }
static void onOtherLine(const char* text) { otherLines.push_back(text); }

// ---------------------------------------------------------------------------------------
// 1. Misuse

static void testMisuse() {
  printf("# API misuse, no network\n");
  PosixClient client;
  IoTHubBuffer<4, 2> buffer = {};
  IoTHub hub(client, buffer);
  expect(hub.add("temp", 1), IOTHUB_NOT_STARTED, "add() before begin()");
  expect(hub.loop(), IOTHUB_NOT_STARTED, "loop() before begin()");
  expect(hub.send(), IOTHUB_NOT_STARTED, "send() before begin()");
  expect(hub.begin(nullptr, 5070, "t"), IOTHUB_BAD_ARGUMENT, "begin() without a host");
  expect(hub.begin("127.0.0.1", 0, "t"), IOTHUB_BAD_ARGUMENT, "begin() with port 0");
  expect(hub.begin("127.0.0.1", 1, "to\nken"), IOTHUB_BAD_ARGUMENT, "begin() with a newline in the token");
  expect(hub.begin("127.0.0.1", 1, "to|ken"), IOTHUB_BAD_ARGUMENT, "begin() with | in the token");
  expect(hub.begin("127.0.0.1", 1, nullptr), IOTHUB_BAD_ARGUMENT, "begin() without token and without id");
  // Port 1 on this machine refuses connections: the library must keep working offline.
  expect(hub.begin("127.0.0.1", 1, "token"), IOTHUB_OK, "begin()");
  expect(hub.add("temp", NAN), IOTHUB_BAD_VALUE, "add(NaN)");
  expect(hub.add("temp", INFINITY), IOTHUB_BAD_VALUE, "add(inf)");
  expect(hub.add("", 1), IOTHUB_BAD_NAME, "add() with an empty name");
  expect(hub.add(nullptr, 1), IOTHUB_BAD_NAME, "add() with a null name");
  expect(hub.add("a,b", 1), IOTHUB_BAD_NAME, "add() with ',' in the name");
  expect(hub.add("a=b", 1), IOTHUB_BAD_NAME, "add() with '=' in the name");
  expect(hub.add("a|b", 1), IOTHUB_BAD_NAME, "add() with '|' in the name");
  expect(hub.add("te\"mp", 1), IOTHUB_BAD_NAME, "add() with '\"' in the name");
  expect(hub.add("TS", 1), IOTHUB_BAD_NAME, "add() with the reserved name TS");
  expect(hub.add("sync", 1), IOTHUB_BAD_NAME, "add() with the reserved name sync");
  static const char longName[] = "a1234567890123456789012345678901234567890123456789012345678901234";
  expect(hub.add(longName, 1), IOTHUB_BAD_NAME, "add() with a 65-character name");
  expect(hub.send(), IOTHUB_NO_VALUES, "send() without add()");
  expect(hub.add("a", 1), IOTHUB_OK, "add(a)");
  expect(hub.add("b", 2), IOTHUB_OK, "add(b)");
  expect(hub.add("c", 3), IOTHUB_TOO_MANY_VALUES, "a third value in a 2-value ring");
  expect(hub.add("a", 5), IOTHUB_OK, "add(a) again replaces it");
  expect(hub.send(), IOTHUB_QUEUED, "send() while offline");
  check(hub.pending() == 1, "one reading pending (%u)", hub.pending());
  for (int i = 0; i < 3; i++) {
    hub.add("a", (float)i);
    hub.send();
  }
  check(hub.pending() == 4 && hub.dropped() == 0, "ring full, nothing dropped yet");
  hub.add("a", 9);
  expect(hub.send(), IOTHUB_DROPPED_OLDEST, "send() into a full ring");
  check(hub.pending() == 4 && hub.dropped() == 1, "still 4 pending, 1 dropped (%u, %u)", hub.pending(),
        (unsigned)hub.dropped());
  expect(hub.onCommand("1LED", onLed), IOTHUB_BAD_NAME, "onCommand() with a name starting with a digit");
  expect(hub.onCommand("LE-D", onLed), IOTHUB_BAD_NAME, "onCommand() with '-' in the name");
  expect(hub.onCommand("LED", nullptr), IOTHUB_BAD_ARGUMENT, "onCommand() without a handler");
  expect(hub.onCommand("LED", onLed, NAN, 1), IOTHUB_BAD_ARGUMENT, "onCommand() with a NaN bound");
  expect(hub.setKeepalive(10), IOTHUB_BAD_ARGUMENT, "setKeepalive(10)");
  expect(hub.setBackoff(0, 10), IOTHUB_BAD_ARGUMENT, "setBackoff(0, 10)");
  expect(hub.setBackoff(100, 10), IOTHUB_BAD_ARGUMENT, "setBackoff(100, 10)");
  expect(hub.setTime(5), IOTHUB_BAD_ARGUMENT, "setTime() before 2001 (a clock never set)");
  expect(hub.setTime(1800000000, 1000), IOTHUB_BAD_ARGUMENT, "setTime() with 1000 ms");
  expect(hub.setFormat((IoTHubFormat)17), IOTHUB_BAD_ARGUMENT, "setFormat() with no such format");
  expect(hub.setId("a,b"), IOTHUB_BAD_NAME, "setId() with ','");
  expect(hub.field("unit", "a unit far too long for the hub"), IOTHUB_BAD_NAME, "a unit over 16 characters");
  expect(hub.loop(), IOTHUB_CONNECT_FAILED, "loop(): nobody listens on port 1");
  expect(hub.loop(), IOTHUB_WAITING, "loop() right after: backing off");
  bool named = true;
  for (int s = 0; s < 64; s++) named = named && iothubStatusName((IoTHubStatus)s) != nullptr;
  check(named, "every status has a name");

  IoTHubBuffer<2, 1> small = {};
  IoTHub many(client, small);
  many.begin("127.0.0.1", 1, "token");
  static char names[IOTHUB_MAX_FIELDS + 1][8];
  IoTHubStatus last = IOTHUB_OK;
  int ok = 0;
  for (int i = 0; i <= IOTHUB_MAX_FIELDS; i++) {
    snprintf(names[i], sizeof(names[i]), "f%d", i);
    last = many.field(names[i]);
    if (last == IOTHUB_OK) ok++;
  }
  check(ok == IOTHUB_MAX_FIELDS && last == IOTHUB_TOO_MANY_FIELDS, "field %d of %d: %s", IOTHUB_MAX_FIELDS + 1,
        IOTHUB_MAX_FIELDS, name(last));
  expect(many.end(), IOTHUB_OK, "end()");
  expect(many.loop(), IOTHUB_NOT_STARTED, "loop() after end()");
}

// ---------------------------------------------------------------------------------------
// 2. A hostile peer

struct Peer {
  int listener = -1, fd = -1;
  uint16_t port = 0;
  std::string got;  // what the library wrote on the current connection

  Peer() {
    listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener, (sockaddr*)&a, sizeof(a));
    listen(listener, 4);
    socklen_t len = sizeof(a);
    getsockname(listener, (sockaddr*)&a, &len);
    port = ntohs(a.sin_port);
  }
  ~Peer() {
    closeConnection();
    close(listener);
  }
  bool accept(IoTHub& hub, uint32_t ms) {
    return pumpUntil(hub, ms, [&] {
      int c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
      if (c < 0) return false;
      closeConnection();
      fd = c;
      got.clear();
      return true;
    });
  }
  void closeConnection() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  void say(const std::string& text) { send(fd, text.data(), text.size(), MSG_NOSIGNAL); }
  void drain() {
    char buf[1024];
    ssize_t n;
    while (fd >= 0 && (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) got.append(buf, (size_t)n);
  }
  // Pumps the hub until what it wrote contains `text` (from `from` on).
  bool waitFor(IoTHub& hub, const std::string& text, uint32_t ms, size_t from = 0) {
    return pumpUntil(hub, ms, [&] {
      drain();
      return got.find(text, from) != std::string::npos;
    });
  }
};

// Statuses loop() returned while pumping for `ms`.
static std::set<int> statusesOver(IoTHub& hub, uint32_t ms) {
  std::set<int> seen;
  uint32_t start = millis();
  while (millis() - start < ms) {
    seen.insert(hub.loop());
    delay(2);
  }
  return seen;
}

// Pumps until loop() returns `want`.
static bool waitStatus(IoTHub& hub, IoTHubStatus want, uint32_t ms) {
  uint32_t start = millis();
  while (millis() - start < ms) {
    if (hub.loop() == want) return true;
    delay(2);
  }
  return false;
}

static void testHostilePeer() {
  printf("# a hostile peer (a socket in this test, not the hub)\n");
  Peer peer;
  PosixClient client;
  IoTHubBuffer<8, 2> buffer = {};
  IoTHub hub(client, buffer);
  hub.setName("Peer test");
  hub.field("temp", "\xc2\xb0" "C");
  hub.onCommand("LED", onLed, 0, 1);
  hub.onError(onError);
  hub.onLine(onOtherLine);
  hub.setKeepalive(300);
  hub.setBackoff(50, 200);
  hub.begin("127.0.0.1", peer.port, "tok123");
  check(peer.accept(hub, 2000), "the library connects");
  check(peer.waitFor(hub, "sync=0\n", 2000), "greeting ends with sync=0");
  const char* greeting =
      "token=tok123\n{\"register\":{\"name\":\"Peer test\",\"fields\":[{\"name\":\"temp\",\"unit\":\"\xc2\xb0" "C\"}],"
      "\"commands\":[{\"name\":\"LED\",\"min\":0,\"max\":1}]}}\nsync=0\n";
  check(peer.got == greeting, "token, registration and sync, exactly: %s", show(peer.got).c_str());

  size_t mark = peer.got.size();
  hub.add("temp", 23.5f);
  hub.add("x", -0.001f);
  expect(hub.send(), IOTHUB_OK, "send() while connected");
  check(peer.waitFor(hub, "sync=1\n", 1000, mark), "a reading and its sync");
  check(peer.got.substr(mark) == "temp=23.5,x=-0.001\nsync=1\n", "written as one key=value line, then sync=1: %s",
        show(peer.got.substr(mark)).c_str());
  struct {
    float value;
    const char* text;
  } numbers[] = {{42, "42"}, {1.5e12f, "1.5e12"}, {0.1f, "0.1"}, {-7.25f, "-7.25"}, {16777216.f, "16777216"},
                 {2.5e-7f, "2.5e-7"}, {0, "0"}};
  for (auto& n : numbers) {
    mark = peer.got.size();
    hub.add("temp", n.value);
    hub.send();
    std::string want = std::string("temp=") + n.text + "\n";
    bool found = peer.waitFor(hub, want, 1000, mark);
    std::string wrote = peer.got.substr(mark, peer.got.find('\n', mark) - mark);
    check(found, "%s written as %s", n.text, wrote.c_str());
  }
  uint8_t sentSoFar = hub.pending();
  check(sentSoFar == 8, "8 readings pending, unconfirmed (%u)", sentSoFar);

  printf("# garbage from the peer\n");
  hubErrors.clear();
  otherLines.clear();
  ledCalls = 0;
  mark = peer.got.size();
  peer.say(std::string(400, 'x') + "\n");
  auto seen = statusesOver(hub, 100);
  check(seen.count(IOTHUB_LINE_TOO_LONG), "a 400-byte line: line too long");
  peer.say(std::string("\x00\x01\xff\xfe garbage\n", 13));
  peer.say("stored=abc\nstored=99999999999\n");
  seen = statusesOver(hub, 100);
  check(seen.count(IOTHUB_BAD_MESSAGE), "stored=abc, stored=99999999999: bad message");
  check(hub.pending() == 8, "nothing dropped by bad stored= lines (%u)", hub.pending());
  peer.say("LED=x,seq=1\nLED=1,seq=-5\nLED=1,seq=\n");
  seen = statusesOver(hub, 100);
  check(seen.count(IOTHUB_BAD_MESSAGE) && ledCalls == 0, "malformed commands: bad message, no handler call");
  peer.say("LED=5,seq=9\n");
  seen = statusesOver(hub, 100);
  check(seen.count(IOTHUB_COMMAND_REFUSED) && ledCalls == 0, "LED=5 outside 0..1: refused, no handler call");
  peer.say("FOO=1,seq=10\n");
  seen = statusesOver(hub, 100);
  check(seen.count(IOTHUB_UNKNOWN_COMMAND), "FOO without a handler: unknown command");
  peer.say("{\"cmd\":\"LED\",\"value\":1}\n{\"cmd\":\"LED\",\"value\":\"on\",\"seq\":3}\n{{{{\n");
  seen = statusesOver(hub, 100);
  check(ledCalls == 0, "JSON commands without seq or with a text value: not run");
  peer.say("error: you are wrong\n");
  seen = statusesOver(hub, 100);
  check(seen.count(IOTHUB_HUB_ERROR) && !hubErrors.empty() && hubErrors.back() == "you are wrong",
        "error: line reaches onError (%s)", hubErrors.empty() ? "" : hubErrors.back().c_str());
  peer.say("error: " + std::string(500, 'e') + "\n");
  seen = statusesOver(hub, 100);
  check(hubErrors.size() == 2 && hubErrors.back().size() > 40, "an error too long for the buffer still reports its start");
  check(otherLines.size() >= 2, "lines nobody understood go to onLine (%zu)", otherLines.size());
  peer.say("LED=1,seq=77,dur=250\n");
  check(peer.waitFor(hub, "ack=77\n", 1000, mark), "a good command after all that is acknowledged");
  check(ledCalls == 1 && ledValue == 1 && ledDuration == 250, "handler got LED=1 for 250 ms");
  peer.say("{\"cmd\":\"LED\",\"value\":0,\"seq\":12345678901234567890}\n");
  check(peer.waitFor(hub, "ack=12345678901234567890\n", 1000, mark), "a JSON command; a 20-digit seq echoed as sent");
  peer.drain();
  std::string after = peer.got.substr(mark);
  std::string acks;
  for (size_t at = 0; (at = after.find("ack=", at)) != std::string::npos; at++) acks += after.substr(at, after.find('\n', at) - at) + ";";
  check(acks == "ack=77;ack=12345678901234567890;", "no ack for any bad command (%s)", acks.c_str());

  peer.say("stored=3\n");
  pump(hub, 100);
  check(hub.pending() == 5, "stored=3 drops readings 1..3 (%u pending)", hub.pending());
  peer.say("stored=4000\n");
  pump(hub, 100);
  check(hub.pending() == 0, "stored= beyond what was sent drops only what was sent (%u pending)", hub.pending());

  printf("# the peer goes silent, then closes\n");
  uint16_t before = hub.connections();
  hub.add("temp", 1);
  hub.send();  // number 9: written, never confirmed
  // Keepalive 300 ms: three unanswered rounds.
  check(waitStatus(hub, IOTHUB_CONNECTION_LOST, 2000), "a peer that answers nothing for 3 keepalives is dropped");
  check(peer.accept(hub, 2000) && hub.connections() == before + 1, "and the library reconnects");
  bool resent = peer.waitFor(hub, "sync=9\n", 1000);
  check(resent, "the unconfirmed reading goes again: %s", show(peer.got).c_str());
  check(peer.got.find("temp=1\nsync=9\n") != std::string::npos, "reading 9 resent with its sync");
  peer.say("stored=9\n");
  pump(hub, 100);
  check(hub.pending() == 0, "confirmed at last");
  peer.closeConnection();
  check(waitStatus(hub, IOTHUB_CONNECTION_LOST, 500), "a closed connection is noticed");

  printf("# framed, hostile\n");
  Peer fpeer;
  PosixClient fclient;
  IoTHubBuffer<4, 2> fbuffer = {};
  IoTHub framed(fclient, fbuffer);
  framed.setFormat(IOTHUB_FRAMED);
  framed.onCommand("LED", onLed, 0, 1);
  framed.begin("127.0.0.1", fpeer.port, "tok");
  check(fpeer.accept(framed, 2000), "framed: connects");
  check(fpeer.waitFor(framed, "|START|SYNC=0|END|", 1000), "framed greeting");
  check(fpeer.got == "|START|TOKEN=tok|END||START|SYNC=0|END|", "framed: token then sync, no registration: %s",
        fpeer.got.c_str());
  mark = fpeer.got.size();
  framed.add("temp", 21.5f);
  framed.send();
  check(fpeer.waitFor(framed, "|START|temp=21.5|END||START|SYNC=1|END|", 1000, mark), "framed reading and sync");
  ledCalls = 0;
  fpeer.say("junk|START|nonsense|END|  |START|" + std::string(600, 'y') + "|END|\r\n");
  seen = statusesOver(framed, 100);
  check(seen.count(IOTHUB_LINE_TOO_LONG), "framed: a 600-byte frame is skipped whole");
  mark = fpeer.got.size();
  fpeer.say("|START|COMMAND=HELLO!|END|");
  check(fpeer.waitFor(framed, "|START|COMMAND=HELLO!|END|", 1000, mark), "framed: the hub's HELLO! is answered");
  fpeer.say("|START|COMMAND=SET|LED=1|SEQ=5|DUR=100|END|");
  check(fpeer.waitFor(framed, "|START|ACK=5|END|", 1000, mark), "framed: command acknowledged");
  check(ledCalls == 1 && ledDuration == 100, "framed: handler called once, 100 ms");
  fpeer.say("|START|COMMAND=SET|LED=1|END||START|COMMAND=SET|LED=1|SEQ=x|END|");
  pump(framed, 100);
  check(ledCalls == 1, "framed: commands without a good SEQ are not run");
  fpeer.say("|START|STORED=1|END|");
  pump(framed, 100);
  check(framed.pending() == 0, "framed: STORED=1 confirms the reading");
  // Our own HELLO! gets the hub's answer, which must not be answered again: the two ends
  // would greet each other for ever.
  framed.setKeepalive(300);
  mark = fpeer.got.size();
  check(fpeer.waitFor(framed, "|START|COMMAND=HELLO!|END|", 1000, mark), "framed: a keepalive HELLO! after 300 ms of quiet");
  fpeer.say("|START|COMMAND=HELLO!|END|");
  mark = fpeer.got.size();
  pump(framed, 150);
  fpeer.drain();
  check(fpeer.got.size() == mark, "framed: the answer to our HELLO! is not answered (%s)", show(fpeer.got.substr(mark)).c_str());
}

// What a board keeps in RTC memory across deep sleep: the ring outlives the hub object.
static void testKeptRing() {
  printf("# a ring kept across a restart (deep sleep), and one holding garbage\n");
  static IoTHubBuffer<4, 2> kept;  // static: zeroed at start, like RTC memory after power-up
  Peer peer;
  {
    PosixClient client;
    IoTHub before(client, kept);
    before.field("temp");
    before.field("hum");
    before.begin("127.0.0.1", 1, "tok");  // nobody there: everything stays in the ring
    for (int i = 1; i <= 3; i++) {
      before.add("temp", (float)i);
      before.add("hum", 40.f + i);
      before.send();
    }
    check(before.pending() == 3, "3 readings kept offline before the restart");
  }
  {
    PosixClient client;
    IoTHub after(client, kept);
    after.field("temp");  // declared again in the same order: the ring's field indexes hold
    after.field("hum");
    expect(after.begin("127.0.0.1", peer.port, "tok"), IOTHUB_OK, "begin() with the kept ring");
    check(after.pending() == 3, "the kept readings are still pending (%u)", after.pending());
    check(peer.accept(after, 2000) && peer.waitFor(after, "sync=3\n", 1000), "and go out after connecting");
    check(peer.got.find("temp=1,hum=41\ntemp=2,hum=42\ntemp=3,hum=43\nsync=3\n") != std::string::npos,
          "in order, numbered on from before: %s", show(peer.got).c_str());
    peer.closeConnection();
  }
  {
    PosixClient client;
    IoTHub fewer(client, kept);
    fewer.field("temp");  // this boot knows only the first field
    fewer.begin("127.0.0.1", peer.port, "tok");
    check(peer.accept(fewer, 2000) && peer.waitFor(fewer, "sync=3\n", 1000), "a boot that declares fewer fields");
    check(peer.got.find("temp=1\ntemp=2\ntemp=3\n") != std::string::npos, "sends what it knows, no crash: %s",
          show(peer.got).c_str());
    peer.closeConnection();
  }
  memset(&kept, 0xA5, sizeof(kept));  // what RTC memory may hold after a firmware change
  PosixClient client;
  IoTHub fresh(client, kept);
  expect(fresh.begin("127.0.0.1", 1, "tok"), IOTHUB_OK, "begin() with a ring of garbage");
  check(fresh.pending() == 0, "garbage is not taken for readings (%u pending)", fresh.pending());
  fresh.add("temp", 1);
  check(fresh.send() == IOTHUB_QUEUED && fresh.pending() == 1, "and the ring works from empty");
}

// ---------------------------------------------------------------------------------------
// 3. The real hub

struct Http {
  int status = 0;
  std::string body;
};

static std::string httpHost;
static uint16_t httpPort = 0;
static std::string apiToken;

static Http http(const char* method, const std::string& path, const std::string& body = "") {
  Http result;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(httpPort);
  inet_pton(AF_INET, httpHost.c_str(), &a.sin_addr);
  if (connect(fd, (sockaddr*)&a, sizeof(a)) != 0) {
    close(fd);
    return result;
  }
  std::string request = std::string(method) + " " + path + " HTTP/1.1\r\nHost: " + httpHost + "\r\n" +
                        "Authorization: Bearer " + apiToken + "\r\nConnection: close\r\n";
  if (!body.empty()) {
    request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buf[4096];
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, (size_t)n);
  close(fd);
  if (response.size() > 12) result.status = atoi(response.c_str() + 9);
  size_t split = response.find("\r\n\r\n");
  std::string raw = split == std::string::npos ? "" : response.substr(split + 4);
  // Chunked or not: the JSON bodies here are small; strip chunk-size lines if present.
  if (response.find("Transfer-Encoding: chunked") != std::string::npos ||
      response.find("transfer-encoding: chunked") != std::string::npos) {
    std::string joined;
    size_t at = 0;
    while (at < raw.size()) {
      size_t eol = raw.find("\r\n", at);
      if (eol == std::string::npos) break;
      long size = strtol(raw.substr(at, eol - at).c_str(), nullptr, 16);
      if (size <= 0) break;
      joined += raw.substr(eol + 2, (size_t)size);
      at = eol + 2 + (size_t)size + 2;
    }
    raw = joined;
  }
  result.body = raw;
  return result;
}

// A number after `"key":` in `text` from `from` on; -1 for null or absent.
static double jsonNumber(const std::string& text, const std::string& key, size_t from = 0, size_t to = std::string::npos) {
  size_t at = text.find("\"" + key + "\":", from);
  if (at == std::string::npos || at >= to) return -1;
  const char* p = text.c_str() + at + key.size() + 3;
  if (strncmp(p, "null", 4) == 0) return -1;
  return strtod(p, nullptr);
}

struct Stored {
  double counter;
  long long deviceMs, receivedMs;
};

// The device's stored readings, from the REST API.
static std::vector<Stored> storedReadings(const std::string& device) {
  std::vector<Stored> out;
  Http r = http("GET", "/api/v1/devices/" + device + "/readings?since_ms=0&limit=10000");
  size_t at = 0;
  while ((at = r.body.find("{\"seq\":", at)) != std::string::npos) {
    size_t next = r.body.find("{\"seq\":", at + 1);
    Stored s;
    s.receivedMs = (long long)jsonNumber(r.body, "received_ms", at, next);
    s.deviceMs = (long long)jsonNumber(r.body, "device_ms", at, next);
    static const char counterKey[] = "{\"field\":\"counter\",\"value\":";
    size_t c = r.body.find(counterKey, at);
    s.counter = (c != std::string::npos && c < next) ? strtod(r.body.c_str() + c + strlen(counterKey), nullptr) : -1;
    out.push_back(s);
    at = at + 1;
  }
  return out;
}

// `IOTHUB_CTL start|stop`, run beside the device loop so the device keeps going meanwhile.
static pid_t spawnCtl(const char* action) {
  std::string command = std::string(getenv("IOTHUB_CTL")) + " " + action;
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), (char*)nullptr);
    _exit(127);
  }
  return pid;
}

static int ctlDone(pid_t pid, bool* done) {
  int status = 0;
  *done = waitpid(pid, &status, WNOHANG) == pid;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static std::string getenvOr(const char* key, const char* fallback) {
  const char* v = getenv(key);
  return v && *v ? v : fallback;
}

static void setWallTime(IoTHub& hub) {
  uint64_t now = wallMs();
  hub.setTime((uint32_t)(now / 1000), (uint16_t)(now % 1000));
}

static void testRealHubLines(uint16_t tcpPort) {
  std::string id = getenvOr("IOTHUB_LINES_ID", "");
  std::string token = getenvOr("IOTHUB_LINES_TOKEN", "");
  printf("# the real hub, line protocol, device %s\n", id.c_str());
  PosixClient client;
  static IoTHubBuffer<128, 2> buffer;  // static: zeroed, like a board's
  IoTHub hub(client, buffer);
  hub.setName("C++ host test");
  hub.field("counter");
  hub.field("temp", "\xc2\xb0" "C");
  hub.onCommand("LED", onLed, 0, 1);
  hub.onError(onError);
  hub.setBackoff(100, 1000);  // the restart below should not wait long
  setWallTime(hub);
  hubErrors.clear();
  expect(hub.begin("127.0.0.1", tcpPort, token.c_str()), IOTHUB_OK, "begin()");
  if (!check(pumpUntil(hub, 5000, [&] { return hub.connected(); }), "connects to the hub")) return;

  std::map<int, uint64_t> takenAt;  // counter → wall time it was taken
  int counter = 0;
  auto take = [&](std::set<int>* offline) {
    counter++;
    hub.add("counter", (float)counter);
    hub.add("temp", 20 + (counter % 10) * 0.5f);
    takenAt[counter] = wallMs();
    bool online = hub.connected();
    IoTHubStatus s = hub.send();
    if (offline && !online) offline->insert(counter);
    return s;
  };
  for (int i = 0; i < 10; i++) {
    take(nullptr);
    pump(hub, 30);
  }
  bool confirmed = pumpUntil(hub, 5000, [&] { return hub.pending() == 0; });
  if (!check(confirmed, "stored= confirms the first 10 readings (%u still pending)", hub.pending())) {
    printf("# the hub did not answer sync=<n> with stored=<n>: this iothub binary lacks stored "
           "acknowledgements (rebuild it: cargo build -p server --bin iothub)\n");
    return;
  }
  check(hubErrors.empty(), "no error lines from the hub (%s)", hubErrors.empty() ? "" : hubErrors[0].c_str());

  Http device = http("GET", "/api/v1/devices/" + id);
  check(device.status == 200 && device.body.find("\"online\":true") != std::string::npos, "the hub shows the device online");
  check(device.body.find("\"name\":\"C++ host test\"") != std::string::npos &&
            device.body.find("{\"name\":\"temp\",\"unit\":\"\xc2\xb0" "C\"}") != std::string::npos &&
            device.body.find("{\"name\":\"LED\",\"min\":0.0,\"max\":1.0") != std::string::npos,
        "registration stored: name, temp in \xc2\xb0" "C, LED 0..1");
  std::vector<Stored> rows = storedReadings(id);
  bool timesOk = rows.size() == 10;
  for (auto& r : rows) {
    long long want = (long long)takenAt[(int)r.counter];
    timesOk = timesOk && r.deviceMs > 0 && llabs(r.deviceMs - want) < 100;
  }
  check(timesOk, "10 readings stored, each with its device time (device_ms within 100 ms of when it was taken)");

  printf("# a command through the REST API\n");
  ledCalls = 0;
  Http sent = http("POST", "/api/v1/commands",
                   "{\"target\":{\"device\":\"" + id + "\"},\"variable\":\"LED\",\"value\":1,\"duration_ms\":1500}");
  long seq = (long)jsonNumber(sent.body, "seq");
  check(sent.status == 200 && seq > 0, "POST /api/v1/commands: %d, seq %ld", sent.status, seq);
  check(pumpUntil(hub, 3000, [&] { return ledCalls == 1; }) && ledValue == 1 && ledDuration == 1500,
        "the LED handler ran with value 1 for 1500 ms");
  bool acked = pumpUntil(hub, 3000, [&] {
    return http("GET", "/api/v1/commands/" + std::to_string(seq)).body.find("\"status\":\"acked\"") != std::string::npos;
  });
  check(acked, "GET /api/v1/commands/%ld says acked", seq);
  Http refused = http("POST", "/api/v1/commands",
                      "{\"target\":{\"device\":\"" + id + "\"},\"variable\":\"LED\",\"value\":7,\"duration_ms\":null}");
  check(refused.status == 400, "LED=7 is refused by the hub from the registered range (%d)", refused.status);

  printf("# 10 s of silence from the sketch (keepalive only)\n");
  double since = jsonNumber(http("GET", "/api/v1/devices/" + id).body, "connected_since_ms");
  uint16_t connects = hub.connections();
  pump(hub, 10000);
  Http later = http("GET", "/api/v1/devices/" + id);
  check(hub.connected() && hub.connections() == connects, "still the same connection after 10 s (%u connects)",
        hub.connections());
  check(later.body.find("\"online\":true") != std::string::npos && jsonNumber(later.body, "connected_since_ms") == since,
        "the hub still has the device online since the same moment");

  printf("# the hub stopped and restarted mid-stream\n");
  std::set<int> offline;
  int beforeRestart = counter;
  uint32_t lastTake = millis();
  auto stream = [&](uint32_t ms) {
    uint32_t start = millis();
    while (millis() - start < ms) {
      if (millis() - lastTake >= 100) {
        take(&offline);
        lastTake = millis();
      }
      hub.loop();
      delay(2);
    }
  };
  stream(1000);
  pid_t stopping = spawnCtl("stop");
  bool done = false;
  int rc = 0;
  uint32_t start = millis();
  while (!done && millis() - start < 20000) {
    stream(20);
    rc = ctlDone(stopping, &done);
  }
  check(done && rc == 0, "the hub stopped (%s stop: %d)", getenv("IOTHUB_CTL"), rc);
  stream(2000);  // readings taken while no hub runs
  pid_t starting = spawnCtl("start");
  done = false;
  start = millis();
  while (!done && millis() - start < 30000) {
    stream(20);
    rc = ctlDone(starting, &done);
  }
  check(done && rc == 0, "the hub started again on the same port and data (%d)", rc);
  stream(2000);
  int total = counter;
  check(pumpUntil(hub, 10000, [&] { return hub.pending() == 0; }), "every reading confirmed after the restart (%u pending)",
        hub.pending());
  check(hub.connections() > connects, "the library reconnected by itself (%u connects)", hub.connections());
  check(!offline.empty(), "%zu readings were taken while the hub was down", offline.size());
  pump(hub, 300);
  rows = storedReadings(id);
  std::map<int, int> copies;
  std::map<int, Stored> byCounter;
  for (auto& r : rows) {
    copies[(int)r.counter]++;
    byCounter[(int)r.counter] = r;
  }
  std::string missing, doubled;
  for (int c = 1; c <= total; c++) {
    if (copies[c] == 0) missing += " " + std::to_string(c);
    if (copies[c] > 1) doubled += " " + std::to_string(c) + "x" + std::to_string(copies[c]);
  }
  check(missing.empty(), "no reading lost (1..%d; missing:%s)", total, missing.c_str());
  check(doubled.empty(), "no reading stored twice (duplicates:%s)", doubled.c_str());
  check((int)rows.size() == total, "%zu rows stored for %d readings taken", rows.size(), total);
  bool offlineTimes = true;
  long long longestWait = 0;
  for (int c : offline) {
    const Stored& s = byCounter[c];
    long long want = (long long)takenAt[c];
    bool ok = s.deviceMs > 0 && llabs(s.deviceMs - want) < 100 && s.receivedMs >= s.deviceMs;
    if (!ok) printf("#   counter %d: device_ms %lld, taken %lld, received %lld\n", c, s.deviceMs, want, s.receivedMs);
    offlineTimes = offlineTimes && ok;
    if (s.receivedMs - s.deviceMs > longestWait) longestWait = s.receivedMs - s.deviceMs;
  }
  check(offlineTimes, "readings taken offline are stored with the times they were taken");
  check(longestWait > 1500, "and arrived later: the oldest %lld ms after it was taken", longestWait);
  check(total > beforeRestart + 30, "the stream went on through the restart (%d readings)", total - beforeRestart);
}

static void testRealHubFramed(uint16_t tcpPort) {
  std::string id = getenvOr("IOTHUB_FRAMED_ID", "");
  std::string token = getenvOr("IOTHUB_FRAMED_TOKEN", "");
  printf("# the real hub, framed protocol, device %s\n", id.c_str());
  PosixClient client;
  static IoTHubBuffer<16, 2> buffer;
  IoTHub hub(client, buffer);
  hub.setFormat(IOTHUB_FRAMED);
  hub.onCommand("LED", onLed, 0, 1);
  hubErrors.clear();
  hub.onError(onError);
  expect(hub.begin("127.0.0.1", tcpPort, token.c_str()), IOTHUB_OK, "begin()");
  if (!check(pumpUntil(hub, 5000, [&] { return hub.connected(); }), "connects")) return;
  for (int i = 1; i <= 5; i++) {
    hub.add("counter", (float)i);
    hub.add("temp", 21.5f);
    hub.send();
    pump(hub, 20);
  }
  check(pumpUntil(hub, 5000, [&] { return hub.pending() == 0; }), "STORED confirms 5 framed readings (%u pending)",
        hub.pending());
  std::vector<Stored> rows = storedReadings(id);
  std::set<int> counters;
  for (auto& r : rows) counters.insert((int)r.counter);
  check(rows.size() == 5 && counters.size() == 5, "5 readings stored once each (%zu rows)", rows.size());
  ledCalls = 0;
  Http sent = http("POST", "/api/v1/commands",
                   "{\"target\":{\"device\":\"" + id + "\"},\"variable\":\"LED\",\"value\":0,\"duration_ms\":null}");
  long seq = (long)jsonNumber(sent.body, "seq");
  check(pumpUntil(hub, 3000, [&] { return ledCalls == 1; }) && ledValue == 0, "framed command reached the handler");
  bool acked = pumpUntil(hub, 3000, [&] {
    return http("GET", "/api/v1/commands/" + std::to_string(seq)).body.find("\"status\":\"acked\"") != std::string::npos;
  });
  check(acked, "framed command %ld acked", seq);
  uint16_t connects = hub.connections();
  pump(hub, 8000);  // the hub drops a framed device silent for 2 x 3 s
  check(hub.connected() && hub.connections() == connects, "8 s of silence survived with HELLO! keepalives");
  check(http("GET", "/api/v1/devices/" + id).body.find("\"online\":true") != std::string::npos, "the hub has it online");
  check(hubErrors.empty(), "no error frames from the hub (%s)", hubErrors.empty() ? "" : hubErrors[0].c_str());
}

int main() {
  signal(SIGPIPE, SIG_IGN);
  testMisuse();
  testHostilePeer();
  testKeptRing();
  const char* tcp = getenv("IOTHUB_TCP_PORT");
  if (tcp && *tcp) {
    std::string base = getenvOr("IOTHUB_HTTP", "http://127.0.0.1:3000");
    std::string hostPort = base.substr(base.find("//") + 2);
    httpHost = hostPort.substr(0, hostPort.find(':'));
    httpPort = (uint16_t)atoi(hostPort.substr(hostPort.find(':') + 1).c_str());
    apiToken = getenvOr("IOTHUB_API_TOKEN", "");
    testRealHubLines((uint16_t)atoi(tcp));
    testRealHubFramed((uint16_t)atoi(tcp));
  } else {
    printf("# IOTHUB_TCP_PORT not set: the tests against the real hub did not run\n");
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
