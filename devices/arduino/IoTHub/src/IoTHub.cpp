// IoTHub: see IoTHub.h for what it does and README.md (devices/) for the protocol.
//
// Written for an 8-bit board first: no heap, no printf (avr-libc's float printf alone is
// ~1.5 KiB of flash), no 64-bit arithmetic (device times are printed as seconds and ms), no
// strtod (a few lines parse what the hub sends, which is always short and plain).

#include "IoTHub.h"

#include <string.h>

// An AVR keeps string literals in RAM unless told otherwise, and an Uno has 2 KiB of it: the
// library's own texts stay in flash (PROGMEM) and are read a byte at a time. Cores that need
// the same (ESP8266) define PSTR and pgm_read_byte too; on the rest, and on Linux, these are
// plain strings.
#if defined(__AVR__)
#include <avr/pgmspace.h>
#endif
#if defined(PSTR) && defined(pgm_read_byte)
#define IOTHUB_FLASH_STRINGS 1
#define F_(s) PSTR(s)
#define FLASH_CHAR(p) ((char)pgm_read_byte(p))
#else
#define IOTHUB_FLASH_STRINGS 0
#define F_(s) (s)
#define FLASH_CHAR(p) (*(p))
#endif
#ifndef PROGMEM
#define PROGMEM
#endif

namespace {

const uint32_t RING_MAGIC = 0x49544842UL;  // "ITHB": a ring begin() has set up
// A sync that got no stored= within this long is sent again (the hub answers `error: … send
// it again later` while its database refuses writes; a reply may also be lost).
const uint32_t RESYNC_MS = 2000;
// Our own rate limit, under the hub's 100 messages/s per device: a long backlog after a
// reconnect goes out at 40/s, in bursts of at most 20.
const uint8_t RATE_BURST = 20;
const uint32_t RATE_EVERY_MS = 25;
// Bytes read per loop() call at most, so that a flood from the hub cannot starve the sketch.
const uint16_t READ_BUDGET = 256;
const uint8_t MAX_NAME = 64;       // the hub's limit for field names
const uint8_t MAX_COMMAND_NAME = 32;  // and for command variables
const char HELLO[] PROGMEM = "|START|COMMAND=HELLO!|END|";
const char END_MARK[] PROGMEM = "|END|";
const char START_MARK[] PROGMEM = "|START|";
// Names the protocol gives a meaning of its own: no field may take them.
const char RESERVED[] PROGMEM = "id,ack,sync,ts,register,token,";

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

// Case-insensitive comparison of a counted token with a word in flash: the hub writes framed
// keys in capitals (SEQ, STORED) and line keys in lower case.
bool same(const char* token, uint8_t len, const char* word) {
  for (uint8_t i = 0; i < len; i++) {
    char w = FLASH_CHAR(word + i);
    if (w == 0 || lower(token[i]) != lower(w)) return false;
  }
  return FLASH_CHAR(word + len) == 0;
}

// The same with a word in RAM (a command name the sketch gave).
bool sameRam(const char* token, uint8_t len, const char* word) {
  for (uint8_t i = 0; i < len; i++) {
    if (word[i] == 0 || lower(token[i]) != lower(word[i])) return false;
  }
  return word[len] == 0;
}

uint8_t lengthP(const char* s) {
  uint8_t n = 0;
  while (FLASH_CHAR(s + n)) n++;
  return n;
}

// The first n characters of `ram` are those of `flash`.
bool equalP(const char* ram, const char* flash, uint8_t n) {
  for (uint8_t i = 0; i < n; i++) {
    if (ram[i] != FLASH_CHAR(flash + i)) return false;
  }
  return true;
}

bool sameName(const char* a, const char* b) {
  while (*a && lower(*a) == lower(*b)) {
    a++;
    b++;
  }
  return *a == *b || lower(*a) == lower(*b);
}

bool startsWith(const char* text, const char* prefix) {
  for (char c; (c = FLASH_CHAR(prefix)) != 0; prefix++) {
    if (*text++ != c) return false;
  }
  return true;
}

// Whole numbers only, no sign, no overflow: seq, dur, stored.
bool parseU32(const char* s, uint8_t len, uint32_t* out) {
  if (len == 0 || len > 10) return false;
  uint32_t v = 0;
  for (uint8_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    uint32_t next = v * 10 + (uint32_t)(s[i] - '0');
    if (next / 10 != v) return false;
    v = next;
  }
  *out = v;
  return true;
}

// A decimal number as the hub writes command values (`1`, `-0.25`, maybe `1e3`); float
// precision is all a command on such a board needs.
bool parseFloat(const char* s, uint8_t len, float* out) {
  uint8_t i = 0;
  bool negative = false;
  if (i < len && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
  float v = 0;
  bool digits = false;
  while (i < len && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + (float)(s[i++] - '0');
    digits = true;
  }
  if (i < len && s[i] == '.') {
    i++;
    float scale = 0.1f;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      v += (float)(s[i++] - '0') * scale;
      scale *= 0.1f;
      digits = true;
    }
  }
  if (!digits) return false;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    bool minus = false;
    if (i < len && (s[i] == '-' || s[i] == '+')) minus = s[i++] == '-';
    uint8_t e = 0;
    bool expDigits = false;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      e = (uint8_t)(e * 10 + (s[i++] - '0'));
      if (e > 60) return false;
      expDigits = true;
    }
    if (!expDigits) return false;
    while (e--) v = minus ? v / 10 : v * 10;
  }
  if (i != len || v != v || v > 3.4e38f) return false;
  *out = negative ? -v : v;
  return true;
}

// Walks `KEY=VALUE` pairs separated by `sep` without changing the text, so that a message
// nobody understood can still be handed to onLine whole.
struct Pairs {
  const char* p;
  char sep;
  const char* key;
  const char* value;
  uint8_t keyLen, valueLen;

  Pairs(const char* text, char separator) : p(text), sep(separator), key(0), value(0), keyLen(0), valueLen(0) {}

  // False at the end. A part without `=` yields an empty value.
  bool next() {
    while (*p == sep || isSpace(*p)) p++;
    if (*p == 0) return false;
    const char* start = p;
    while (*p && *p != sep) p++;
    const char* end = p;
    while (end > start && isSpace(end[-1])) end--;
    const char* eq = start;
    while (eq < end && *eq != '=') eq++;
    key = start;
    keyLen = clamp(eq - start);
    while (keyLen && isSpace(key[keyLen - 1])) keyLen--;
    if (eq < end) {
      value = eq + 1;
      while (value < end && isSpace(*value)) value++;
      valueLen = clamp(end - value);
    } else {
      value = end;
      valueLen = 0;
    }
    return true;
  }

  static uint8_t clamp(long n) { return n > 255 ? 255 : (uint8_t)n; }
};

// A command's parts as lines and frames carry them (`LED=1,seq=12,dur=500`, `…|LED=1|SEQ=12|DUR=500`):
// `seq` and `dur` by name, the first other pair is the variable and its value.
struct CommandParts {
  const char *name, *value, *seq, *dur;
  uint8_t nameLen, valueLen, seqLen, durLen;

  CommandParts() : name(0), value(0), seq(0), dur(0), nameLen(0), valueLen(0), seqLen(0), durLen(0) {}

  void take(const Pairs& pair) {
    if (same(pair.key, pair.keyLen, F_("seq"))) {
      seq = pair.value;
      seqLen = pair.valueLen;
    } else if (same(pair.key, pair.keyLen, F_("dur"))) {
      dur = pair.value;
      durLen = pair.valueLen;
    } else if (name == 0) {
      name = pair.key;
      nameLen = pair.keyLen;
      value = pair.value;
      valueLen = pair.valueLen;
    }
  }

  bool complete() const { return seq != 0 && name != 0; }
};

// `"key": value` in a flat JSON object from the hub: the value's text (a string without its
// quotes). Enough for what the hub sends devices; anything else is not found.
bool jsonValue(const char* text, const char* key, const char** value, uint8_t* len) {
  uint8_t keyLen = lengthP(key);
  for (const char* p = text; *p; p++) {
    if (*p != '"' || !equalP(p + 1, key, keyLen) || p[keyLen + 1] != '"') continue;
    const char* q = p + keyLen + 2;
    while (isSpace(*q)) q++;
    if (*q != ':') continue;
    q++;
    while (isSpace(*q)) q++;
    const char* start = q;
    if (*q == '"') {
      start = ++q;
      while (*q && *q != '"') q++;
      if (*q != '"') return false;
    } else {
      while (*q && *q != ',' && *q != '}' && !isSpace(*q)) q++;
    }
    *value = start;
    *len = Pairs::clamp(q - start);
    return true;
  }
  return false;
}

// A field name the hub accepts and that no protocol character can break: no separators,
// quotes or control characters, not a word the protocol reserves.
bool validFieldName(const char* name) {
  if (name == 0 || name[0] == 0 || name[0] == '{' || isSpace(name[0])) return false;
  uint8_t len = 0;
  for (const char* p = name; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x21 || c == 0x7f || c == ',' || c == '=' || c == '|' || c == '"' || c == '\\') {
      return false;
    }
    if (++len > MAX_NAME) return false;
  }
  for (const char* word = RESERVED; FLASH_CHAR(word); word++) {
    uint8_t n = 0;
    while (FLASH_CHAR(word + n) != ',') n++;
    bool match = len == n;
    for (uint8_t i = 0; match && i < n; i++) match = lower(name[i]) == lower(FLASH_CHAR(word + i));
    if (match) return false;
    word += n;
  }
  return true;
}

// The hub's rule for command variables: a letter or _, then letters, digits or _.
bool validCommandName(const char* name) {
  if (name == 0) return false;
  uint8_t len = 0;
  for (const char* p = name; *p; p++) {
    char c = *p;
    bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(len > 0 && c >= '0' && c <= '9')) return false;
    if (++len > MAX_COMMAND_NAME) return false;
  }
  return len > 0;
}

// Text that goes on the wire verbatim (host, token, id): nothing that ends a line or a frame.
bool validWireText(const char* text) {
  if (text == 0 || text[0] == 0) return false;
  for (const char* p = text; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20 || c == 0x7f || c == '|' || c == ',' || c == '"' || c == '\\') return false;
  }
  return true;
}

}  // namespace

static const char* statusText(IoTHubStatus status) {
  switch (status) {
    case IOTHUB_OK: return F_("ok");
    case IOTHUB_QUEUED: return F_("queued");
    case IOTHUB_DROPPED_OLDEST: return F_("dropped oldest");
    case IOTHUB_WAITING: return F_("waiting");
    case IOTHUB_CONNECTED: return F_("connected");
    case IOTHUB_COMMAND_DONE: return F_("command done");
    case IOTHUB_NOT_STARTED: return F_("not started");
    case IOTHUB_BAD_ARGUMENT: return F_("bad argument");
    case IOTHUB_BAD_NAME: return F_("bad name");
    case IOTHUB_BAD_VALUE: return F_("bad value");
    case IOTHUB_NO_VALUES: return F_("no values");
    case IOTHUB_TOO_MANY_VALUES: return F_("too many values");
    case IOTHUB_TOO_MANY_FIELDS: return F_("too many fields");
    case IOTHUB_TOO_MANY_COMMANDS: return F_("too many commands");
    case IOTHUB_CONNECT_FAILED: return F_("connect failed");
    case IOTHUB_CONNECTION_LOST: return F_("connection lost");
    case IOTHUB_HUB_ERROR: return F_("hub error");
    case IOTHUB_LINE_TOO_LONG: return F_("line too long");
    case IOTHUB_UNKNOWN_COMMAND: return F_("unknown command");
    case IOTHUB_COMMAND_REFUSED: return F_("command refused");
    case IOTHUB_BAD_MESSAGE: return F_("bad message");
  }
  return F_("?");
}

const char* iothubStatusName(IoTHubStatus status) {
#if IOTHUB_FLASH_STRINGS
  // Copied out of flash into one buffer: the names would cost an Uno ~300 bytes of RAM as
  // literals. The next call overwrites it.
  static char name[20];
  const char* text = statusText(status);
  uint8_t i = 0;
  for (; i < sizeof(name) - 1 && FLASH_CHAR(text + i); i++) name[i] = FLASH_CHAR(text + i);
  name[i] = 0;
  return name;
#else
  return statusText(status);
#endif
}

// An error outweighs news; the latest error wins (it is the one a sketch can still act on).
static void note(IoTHubStatus* result, IoTHubStatus s) {
  if (s >= IOTHUB_ERRORS || (*result < IOTHUB_ERRORS && s != IOTHUB_OK)) *result = s;
}

static uint32_t defaultClock() { return millis(); }

IoTHub::IoTHub(Client& client, IoTHubRingState& state, IoTHubReadingHead* heads, IoTHubValue* values,
               uint8_t capacity, uint8_t perReading)
    // The ring's own fields are not touched here: one kept in RTC memory across deep sleep must
    // survive construction. begin() checks it against the shape it was declared with.
    : client_(client), ring_(&state), heads_(heads), values_(values), host_(0), token_(0), id_(0),
      name_(0), clock_(defaultClock), onError_(0), onLine_(0), keepaliveMs_(5000),
      backoffMinMs_(500), backoffMaxMs_(30000), nextAttemptAt_(0), lastRx_(0), lastTx_(0),
      syncSentAt_(0), tokensAt_(0), rng_(0), dropped_(0), timeSec_(0), timeBase_(0), timeMs_(0),
      port_(0), connections_(0), ringCapacity_(capacity), ringPerReading_(perReading),
      state_(IDLE), format_(IOTHUB_AUTO), fieldCount_(0), commandCount_(0), staged_(0), sent_(0),
      attempts_(0), tokens_(RATE_BURST), timeSet_(false), stagedDropped_(false), helloOut_(false),
      accepted_(false), writeFailed_(false), rxSkipping_(false), endMatch_(0), rxLen_(0),
      txLen_(0) {}

IoTHubStatus IoTHub::begin(const char* host, uint16_t port, const char* token) {
  if (host == 0 || host[0] == 0 || port == 0) return IOTHUB_BAD_ARGUMENT;
  if (token != 0 && !validWireText(token)) return IOTHUB_BAD_ARGUMENT;
  if (token == 0 && id_ == 0) return IOTHUB_BAD_ARGUMENT;  // a tokenless device names itself
  if (ringCapacity_ == 0 || ringPerReading_ == 0) return IOTHUB_BAD_ARGUMENT;
  if (state_ == CONNECTED) client_.stop();  // begin() again: another hub, another token
  host_ = host;
  port_ = port;
  token_ = token;
  IoTHubRingState& r = *ring_;
  // Anything else is garbage (a cold start of RTC memory, another firmware's layout): start
  // empty rather than send made-up readings.
  bool kept = r.magic == RING_MAGIC && r.capacity == ringCapacity_ && r.perReading == ringPerReading_ &&
              r.head < r.capacity && r.count <= r.capacity;
  if (kept) {
    for (uint8_t i = 0; i < r.count && kept; i++) {
      const IoTHubReadingHead& h = heads_[slot(i)];
      if (h.count == 0 || h.count > r.perReading) kept = false;
      for (uint8_t v = 0; kept && v < h.count; v++) {
        // Field indexes point into a table that setup() builds again, in the same order.
        if (valuesOf(slot(i))[v].field >= IOTHUB_MAX_FIELDS) kept = false;
      }
    }
  }
  if (!kept) {
    r.magic = RING_MAGIC;
    r.headNumber = 1;
    r.capacity = ringCapacity_;
    r.perReading = ringPerReading_;
    r.head = 0;
    r.count = 0;
  }
  uint32_t now = clock_();
  // Seeded from the token too: boards powered up together have about the same millis(), and
  // their retries should not stay in step.
  rng_ = now ^ 0x9E3779B9UL;
  for (const char* p = token ? token : host; *p; p++) rng_ = (rng_ ^ (uint8_t)*p) * 16777619UL;
  if (rng_ == 0) rng_ = 1;
  staged_ = 0;
  attempts_ = 0;
  nextAttemptAt_ = now;
  state_ = OFFLINE;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::setId(const char* id) {
  if (!validWireText(id) || strchr(id, '=') != 0 || strlen(id) > MAX_NAME) return IOTHUB_BAD_NAME;
  id_ = id;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::setName(const char* name) {
  if (name == 0 || name[0] == 0 || strlen(name) > MAX_NAME) return IOTHUB_BAD_NAME;
  name_ = name;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::setFormat(IoTHubFormat format) {
  if (format > IOTHUB_FRAMED) return IOTHUB_BAD_ARGUMENT;
  // Framing is chosen by the first byte of a connection, so it changes only with a new one.
  if (state_ == CONNECTED && ((format == IOTHUB_FRAMED) != (format_ == IOTHUB_FRAMED))) stop();
  format_ = (uint8_t)format;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::setKeepalive(uint32_t ms) {
  // The hub drops a line device after 20 s of silence and probes a framed one after 3 s; the
  // library declares the hub dead after three keepalives without an answer.
  if (ms < 100 || ms > 60000) return IOTHUB_BAD_ARGUMENT;
  keepaliveMs_ = ms;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::setBackoff(uint32_t minMs, uint32_t maxMs) {
  if (minMs == 0 || minMs > maxMs || maxMs > 3600000UL) return IOTHUB_BAD_ARGUMENT;
  backoffMinMs_ = minMs;
  backoffMaxMs_ = maxMs;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::setClock(IoTHubClockFn clock) {
  if (clock == 0) return IOTHUB_BAD_ARGUMENT;
  clock_ = clock;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::setTime(uint32_t epochSeconds, uint16_t ms) {
  // Before 2001 is a clock that was never set (an RTC's 1970 or 2000), not a time to send.
  if (epochSeconds < 978307200UL || ms > 999) return IOTHUB_BAD_ARGUMENT;
  timeSec_ = epochSeconds;
  timeMs_ = ms;
  timeBase_ = clock_();
  timeSet_ = true;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::field(const char* name, const char* unit) {
  if (unit != 0 && strlen(unit) > 16) return IOTHUB_BAD_NAME;  // the hub's limit for units
  int8_t i = fieldIndex(name, true);
  if (i == -1) return IOTHUB_BAD_NAME;
  if (i == -2) return IOTHUB_TOO_MANY_FIELDS;
  units_[i] = unit;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::onCommand(const char* name, IoTHubCommandFn fn, float min, float max) {
  if (!validCommandName(name)) return IOTHUB_BAD_NAME;
  if (fn == 0 || min != min || max != max) return IOTHUB_BAD_ARGUMENT;
  uint8_t i = 0;
  while (i < commandCount_ && !sameName(commands_[i].name, name)) i++;
  if (i == commandCount_) {
    if (commandCount_ == IOTHUB_MAX_COMMANDS) return IOTHUB_TOO_MANY_COMMANDS;
    commandCount_++;
  }
  commands_[i].name = name;
  commands_[i].fn = fn;
  commands_[i].min = min;
  commands_[i].max = max;
  return IOTHUB_OK;
}

// -1: not a valid name; -2: the table is full.
int8_t IoTHub::fieldIndex(const char* name, bool declare) {
  if (!validFieldName(name)) return -1;
  for (uint8_t i = 0; i < fieldCount_; i++) {
    if (strcmp(fields_[i], name) == 0) return (int8_t)i;
  }
  if (!declare) return -1;
  if (fieldCount_ == IOTHUB_MAX_FIELDS) return -2;
  fields_[fieldCount_] = name;
  units_[fieldCount_] = 0;
  return (int8_t)fieldCount_++;
}

// ---------------------------------------------------------------------------------------
// The ring. Readings are numbered in order (headNumber is the oldest kept); the reading being
// built lives in the slot after the newest, so it costs no room of its own.

uint8_t IoTHub::slot(uint8_t offset) const {
  uint16_t s = (uint16_t)ring_->head + offset;
  return (uint8_t)(s % ring_->capacity);
}

void IoTHub::dropOldest(uint8_t n) {
  IoTHubRingState& r = *ring_;
  if (n > r.count) n = r.count;
  r.head = slot(n);
  r.headNumber += n;
  r.count -= n;
  sent_ = sent_ > n ? (uint8_t)(sent_ - n) : 0;
}

IoTHubStatus IoTHub::add(const char* name, float value) {
  if (state_ == IDLE) return IOTHUB_NOT_STARTED;
  if (value != value || value > 3.4e38f || value < -3.4e38f) return IOTHUB_BAD_VALUE;
  int8_t index = fieldIndex(name, true);
  if (index == -1) return IOTHUB_BAD_NAME;
  if (index == -2) return IOTHUB_TOO_MANY_FIELDS;
  IoTHubRingState& r = *ring_;
  if (staged_ == 0 && r.count == r.capacity) {
    // Full: the newest readings matter more than the oldest, which may even be stored
    // already, their stored= still on its way.
    dropOldest(1);
    dropped_++;
    stagedDropped_ = true;
  }
  IoTHubValue* values = valuesOf(slot(r.count));
  for (uint8_t i = 0; i < staged_; i++) {
    if (values[i].field == (uint8_t)index) {  // the hub refuses a field twice in one reading
      values[i].value = value;
      return IOTHUB_OK;
    }
  }
  if (staged_ == r.perReading) return IOTHUB_TOO_MANY_VALUES;
  values[staged_].field = (uint8_t)index;
  values[staged_].value = value;
  staged_++;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::send() {
  if (state_ == IDLE) return IOTHUB_NOT_STARTED;
  if (staged_ == 0) return IOTHUB_NO_VALUES;
  if (format_ == IOTHUB_CSV && id_ == 0) return IOTHUB_BAD_ARGUMENT;
  IoTHubRingState& r = *ring_;
  // add() made room when this reading began, and nothing since can have filled the ring.
  IoTHubReadingHead& h = heads_[slot(r.count)];
  uint32_t now = clock_();
  h.stamp = now;
  h.count = staged_;
  r.count++;
  staged_ = 0;
  IoTHubStatus kept = stagedDropped_ ? IOTHUB_DROPPED_OLDEST : IOTHUB_QUEUED;
  stagedDropped_ = false;
  if (state_ != CONNECTED) return kept;
  uint8_t before = sent_;
  flushReadings(now, true);
  if (writeFailed_) {
    dropConnection();
    return kept;
  }
  if (sent_ > before && sent_ == r.count) return kept == IOTHUB_DROPPED_OLDEST ? kept : IOTHUB_OK;
  return kept;
}

// ---------------------------------------------------------------------------------------
// The connection

IoTHubStatus IoTHub::loop() {
  if (state_ == IDLE) return IOTHUB_NOT_STARTED;
  uint32_t now = clock_();
  IoTHubStatus result = IOTHUB_OK;
  if (state_ == OFFLINE) {
    if ((int32_t)(now - nextAttemptAt_) < 0) return IOTHUB_WAITING;
    result = connectNow(now);
    if (result != IOTHUB_CONNECTED) return result;
    now = clock_();  // connecting may have taken seconds
  }
  // What arrived first: a hub that answered and then closed still gets its stored= read.
  note(&result, receive(now));
  if (state_ != CONNECTED) return result;
  if (writeFailed_ || !client_.connected()) {
    dropConnection();
    note(&result, IOTHUB_CONNECTION_LOST);
    return result;
  }
  now = clock_();
  // A hub that says nothing to our keepalives for three rounds is gone (a half-open TCP
  // connection would otherwise look alive until the board's TCP stack gives up, minutes).
  if ((uint32_t)(now - lastRx_) >= 3 * keepalive()) {
    dropConnection();
    note(&result, IOTHUB_CONNECTION_LOST);
    return result;
  }
  bool quiet = (uint32_t)(now - lastTx_) >= keepalive();
  bool resync = sent_ > 0 && (uint32_t)(now - syncSentAt_) >= RESYNC_MS;
  uint8_t wrote = flushReadings(now, true);
  if (wrote == 0 && (quiet || resync)) {
    // In lines a sync is the keepalive: it is answered (stored=), which proves the hub is
    // there, and with nothing of ours in flight it costs the hub no database write of its own.
    // Frames have HELLO! for it.
    if (format_ == IOTHUB_FRAMED && !resync) {
      sendHello();
    } else {
      sendSync();
    }
    flushOut();
  }
  if (writeFailed_) {
    dropConnection();
    note(&result, IOTHUB_CONNECTION_LOST);
  }
  return result;
}

IoTHubStatus IoTHub::connectNow(uint32_t now) {
  if (client_.connect(host_, port_) <= 0) {
    client_.stop();
    scheduleRetry(now);
    return IOTHUB_CONNECT_FAILED;
  }
  now = clock_();
  connections_++;
  state_ = CONNECTED;
  sent_ = 0;
  rxLen_ = 0;
  txLen_ = 0;
  rxSkipping_ = false;
  helloOut_ = false;
  accepted_ = false;
  writeFailed_ = false;
  lastRx_ = now;
  lastTx_ = now;
  tokens_ = RATE_BURST;
  tokensAt_ = now;
  if (!sendGreeting()) {
    dropConnection();
    return IOTHUB_CONNECTION_LOST;
  }
  return IOTHUB_CONNECTED;
}

void IoTHub::dropConnection() {
  client_.stop();
  state_ = OFFLINE;
  // Everything not confirmed goes again on the next connection: the hub may or may not have
  // stored it, and only a stored= says so.
  sent_ = 0;
  txLen_ = 0;
  rxLen_ = 0;
  // A connection the hub had accepted ends like any network hiccup: retry soon. One it closed
  // at once (a bad token) keeps backing off, so a misconfigured board does not hammer it.
  if (accepted_) attempts_ = 0;
  scheduleRetry(clock_());
}

void IoTHub::scheduleRetry(uint32_t now) {
  uint32_t wait = backoffMinMs_;
  for (uint8_t i = 0; i < attempts_ && wait < backoffMaxMs_; i++) wait <<= 1;
  if (wait > backoffMaxMs_) wait = backoffMaxMs_;
  // "Equal jitter": at least half the wait, so that retries still back off, plus a random
  // half, so that many boards cut off by one outage do not return in lockstep.
  uint32_t half = wait / 2;
  nextAttemptAt_ = now + half + random32() % (half + 1);
  if (attempts_ < 255) attempts_++;
}

uint32_t IoTHub::keepalive() const {
  // A framed device that stays under the hub's --tcp-keepalive-ms (3 s by default) is never
  // probed, so its HELLO!s and the hub's never cross (each would take the other's for the
  // answer; harmless, but a probe left unanswered costs a reconnect when the margin is thin).
  return (format_ == IOTHUB_FRAMED && keepaliveMs_ > 2000) ? 2000 : keepaliveMs_;
}

uint32_t IoTHub::random32() {
  // xorshift32, our own: Arduino's random() would need the sketch to call randomSeed(), and
  // would move the sketch's own random sequence.
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 17;
  rng_ ^= rng_ << 5;
  return rng_;
}

IoTHubStatus IoTHub::stop() {
  if (state_ == IDLE) return IOTHUB_NOT_STARTED;
  if (state_ == CONNECTED) dropConnection();
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::end() {
  if (state_ == CONNECTED) client_.stop();
  state_ = IDLE;
  return IOTHUB_OK;
}

// ---------------------------------------------------------------------------------------
// Sending

bool IoTHub::takeToken(uint32_t now) {
  uint32_t elapsed = now - tokensAt_;
  if (elapsed >= RATE_EVERY_MS) {
    uint32_t add = elapsed / RATE_EVERY_MS;
    tokens_ = (add + tokens_ >= RATE_BURST) ? RATE_BURST : (uint8_t)(tokens_ + add);
    tokensAt_ = tokens_ == RATE_BURST ? now : tokensAt_ + add * RATE_EVERY_MS;
  }
  if (tokens_ == 0) return false;
  tokens_--;
  return true;
}

bool IoTHub::sendGreeting() {
  bool framed = format_ == IOTHUB_FRAMED;
  if (token_ != 0) {
    putP(framed ? F_("|START|TOKEN=") : F_("token="));
    put(token_);
    putP(framed ? F_("|END|") : F_("\n"));
  }
  if (!framed) sendRegistration();
  // The first sync is answered once the hub has let us in, which is what restarts the
  // backoff; without a token it also names the device (`id=…,sync=…`).
  sendSync();
  flushOut();
  return !writeFailed_;
}

bool IoTHub::sendRegistration() {
  if (name_ == 0 && fieldCount_ == 0 && commandCount_ == 0) return false;
  put('{');
  if (token_ == 0 && id_ != 0) {
    putP(F_("\"id\":"));
    putJsonString(id_);
    put(',');
  }
  putP(F_("\"register\":{"));
  bool comma = false;
  if (name_ != 0) {
    putP(F_("\"name\":"));
    putJsonString(name_);
    comma = true;
  }
  if (fieldCount_ > 0) {
    putP(comma ? F_(",\"fields\":[") : F_("\"fields\":["));
    for (uint8_t i = 0; i < fieldCount_; i++) {
      putP(i ? F_(",{\"name\":") : F_("{\"name\":"));
      putJsonString(fields_[i]);
      if (units_[i] != 0) {
        putP(F_(",\"unit\":"));
        putJsonString(units_[i]);
      }
      put('}');
    }
    put(']');
    comma = true;
  }
  if (commandCount_ > 0) {
    putP(comma ? F_(",\"commands\":[") : F_("\"commands\":["));
    for (uint8_t i = 0; i < commandCount_; i++) {
      const Command& c = commands_[i];
      putP(i ? F_(",{\"name\":") : F_("{\"name\":"));
      putJsonString(c.name);
      if (c.min <= c.max) {
        putP(F_(",\"min\":"));
        putFloat(c.min);
        putP(F_(",\"max\":"));
        putFloat(c.max);
      }
      put('}');
    }
    put(']');
  }
  putP(F_("}}\n"));
  return true;
}

void IoTHub::sendSync() {
  // n is the number of the newest reading written on this connection (or the one before the
  // oldest kept, when none was): stored=n then covers exactly what was sent before it.
  uint32_t n = ring_->headNumber + sent_ - 1;
  bool framed = format_ == IOTHUB_FRAMED;
  bool naming = token_ == 0 && id_ != 0 && !accepted_;
  putP(framed ? F_("|START|") : F_(""));
  if (naming) {
    putP(framed ? F_("ID=") : F_("id="));
    put(id_);
    put(framed ? '|' : ',');
  }
  putP(framed ? F_("SYNC=") : F_("sync="));
  putU32(n);
  putP(framed ? F_("|END|") : F_("\n"));
  syncSentAt_ = clock_();
}

void IoTHub::sendHello() {
  putP(HELLO);
  helloOut_ = true;
}

// Writes the readings not yet written on this connection, as the rate limit allows, then a
// sync for them in the same write: a hub stopping between a reading and its sync would store
// the one and never answer the other, and the reading would come twice.
uint8_t IoTHub::flushReadings(uint32_t now, bool wantSync) {
  uint8_t wrote = 0;
  while (sent_ < ring_->count && takeToken(now)) {
    writeReading(slot(sent_));
    sent_++;
    wrote++;
  }
  if (wrote > 0 && wantSync) sendSync();
  flushOut();
  return wrote;
}

void IoTHub::writeReading(uint8_t index) {
  const IoTHubReadingHead& h = heads_[index];
  const IoTHubValue* values = valuesOf(index);
  // A ring kept in RTC memory across deep sleep may name fields this boot has not declared
  // (yet): such values are left out rather than read through a pointer never set. A reading
  // left with nothing is not written at all; the next stored= drops it like the others.
  uint8_t known = 0;
  for (uint8_t i = 0; i < h.count; i++) known += values[i].field < fieldCount_;
  if (known == 0) return;
  uint8_t format = format_;
  if (format == IOTHUB_AUTO) format = timeSet_ ? IOTHUB_JSON : IOTHUB_KEY_VALUE;
  switch (format) {
    case IOTHUB_JSON:
      put('{');
      break;
    case IOTHUB_CSV:
      put(id_);
      break;
    case IOTHUB_FRAMED:
      putP(F_("|START|"));
      break;
  }
  bool first = true;
  for (uint8_t i = 0; i < h.count; i++) {
    if (values[i].field >= fieldCount_) continue;
    const char* name = fields_[values[i].field];
    switch (format) {
      case IOTHUB_JSON:
        putP(first ? F_("\"") : F_(",\""));
        put(name);
        putP(F_("\":"));
        break;
      case IOTHUB_CSV:
        put(',');
        break;
      case IOTHUB_FRAMED:
        put(name);
        put('=');
        break;
      default:
        if (!first) put(',');
        put(name);
        put('=');
    }
    putFloat(values[i].value);
    if (format == IOTHUB_FRAMED) put('|');
    first = false;
  }
  switch (format) {
    case IOTHUB_JSON:
      if (timeSet_) {
        putP(F_(",\"ts\":"));
        putTime(h.stamp);
      }
      putP(F_("}\n"));
      break;
    case IOTHUB_FRAMED:
      putP(F_("END|"));
      break;
    default:
      put('\n');
  }
}

void IoTHub::put(char c) {
  if (txLen_ == sizeof(tx_)) flushOut();
  tx_[txLen_++] = c;
}

void IoTHub::put(const char* s) {
  while (*s) put(*s++);
}

void IoTHub::putP(const char* s) {
  for (char c; (c = FLASH_CHAR(s)) != 0; s++) put(c);
}

void IoTHub::putJsonString(const char* s) {
  put('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      put('\\');
      put((char)c);
    } else if (c < 0x20) {
      putP(F_("\\u00"));
      put((char)('0' + (c >> 4)));  // c < 0x20: the first digit is 0 or 1
      put((char)((c & 15) < 10 ? '0' + (c & 15) : 'a' + (c & 15) - 10));
    } else {
      put((char)c);
    }
  }
  put('"');
}

void IoTHub::putU32(uint32_t v) {
  char digits[10];
  uint8_t n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) put(digits[--n]);
}

// Seven significant digits (all a float has), trailing zeros trimmed: 23.5, 42, 0.001,
// 1.5e+12. Plain notation from 1e-4 to 1e9, where the scaled value fits 32 bits.
void IoTHub::putFloat(float v) {
  if (v < 0) {
    put('-');
    v = -v;
  }
  if (v == 0) {
    put('0');
    return;
  }
  int8_t e = 0;
  float m = v;
  while (m >= 10) {
    m /= 10;
    e++;
  }
  while (m < 1) {
    m *= 10;
    e--;
  }
  bool plain = e >= -4 && e <= 8;
  uint8_t decimals = plain ? (uint8_t)(e >= 6 ? 0 : 6 - e) : 6;
  float scaled = plain ? v : m;
  for (uint8_t i = 0; i < decimals; i++) scaled *= 10;
  uint32_t r = (uint32_t)(scaled + 0.5f);
  if (!plain && r >= 10000000UL) {  // 9.9999995 rounded up to 10
    r /= 10;
    e++;
  }
  char digits[12];
  uint8_t n = 0;
  do {
    digits[n++] = (char)('0' + r % 10);
    r /= 10;
  } while (r);
  while (n <= decimals) digits[n++] = '0';  // a leading 0 before the point
  uint8_t skip = 0;                          // trailing zeros after the point
  while (skip < decimals && digits[skip] == '0') skip++;
  for (uint8_t i = n; i > decimals; i--) put(digits[i - 1]);
  if (skip < decimals) {
    put('.');
    for (uint8_t i = decimals; i > skip; i--) put(digits[i - 1]);
  }
  if (!plain) {
    put('e');
    if (e < 0) {
      put('-');
      e = (int8_t)-e;
    }
    putU32((uint32_t)e);
  }
}

// The device time of a reading stamped `stamp` on the clock, in ms since 1970, printed as
// seconds then three digits of ms.
void IoTHub::putTime(uint32_t stamp) {
  int32_t total = (int32_t)timeMs_ + (int32_t)(stamp - timeBase_);
  int32_t seconds = total / 1000;
  int32_t ms = total % 1000;
  if (ms < 0) {
    ms += 1000;
    seconds--;
  }
  putU32(timeSec_ + (uint32_t)seconds);
  put((char)('0' + ms / 100));
  put((char)('0' + ms / 10 % 10));
  put((char)('0' + ms % 10));
}

void IoTHub::flushOut() {
  if (txLen_ == 0) return;
  if (state_ == CONNECTED && !writeFailed_) {
    size_t n = client_.write((const uint8_t*)tx_, txLen_);
    if (n != txLen_) writeFailed_ = true;
    lastTx_ = clock_();
  }
  txLen_ = 0;
}

// ---------------------------------------------------------------------------------------
// Receiving

IoTHubStatus IoTHub::receive(uint32_t now) {
  IoTHubStatus result = IOTHUB_OK;
  for (uint16_t budget = READ_BUDGET; budget > 0 && state_ == CONNECTED && client_.available() > 0; budget--) {
    int c = client_.read();
    if (c < 0) break;
    lastRx_ = now;
    note(&result, handleByte((char)c));
  }
  return result;
}

IoTHubStatus IoTHub::handleByte(char c) {
  if (c == 0) c = '\x01';  // a NUL would cut the C string; this keeps the line unparseable
  if (format_ == IOTHUB_FRAMED) {
    if (rxSkipping_) {
      // "|END|" has only "|" as a prefix that is also a suffix, hence the simple restart.
      endMatch_ = (c == FLASH_CHAR(END_MARK + endMatch_)) ? (uint8_t)(endMatch_ + 1) : (c == '|' ? 1 : 0);
      if (endMatch_ == 5) {
        rxSkipping_ = false;
        rxLen_ = 0;
        return IOTHUB_LINE_TOO_LONG;
      }
      return IOTHUB_OK;
    }
    if (rxLen_ == 0 && isSpace(c)) return IOTHUB_OK;
    if (rxLen_ == sizeof(rx_) - 1) {
      rxSkipping_ = true;
      endMatch_ = 0;
      for (uint8_t k = 4; k > 0 && endMatch_ == 0; k--) {  // "|END|" may have begun already
        if (equalP(rx_ + rxLen_ - k, END_MARK, k)) endMatch_ = k;
      }
      return handleByte(c);
    }
    rx_[rxLen_++] = c;
    if (rxLen_ >= 12 && equalP(rx_ + rxLen_ - 5, END_MARK, 5)) {
      rx_[rxLen_ - 4] = 0;  // keep the last '|' as the end of the last pair
      rxLen_ = 0;
      const char* start = rx_;
      while (*start && !equalP(start, START_MARK, 7)) start++;
      if (*start == 0) return IOTHUB_BAD_MESSAGE;
      return handleFrame(start + 7);
    }
    return IOTHUB_OK;
  }
  if (c == '\n') {
    rx_[rxLen_] = 0;
    if (rxLen_ > 0 && rx_[rxLen_ - 1] == '\r') rx_[rxLen_ - 1] = 0;
    rxLen_ = 0;
    if (rxSkipping_) {
      rxSkipping_ = false;
      // An error that did not fit is still worth its first part.
      if (startsWith(rx_, F_("error:"))) hubError(rx_);
      return IOTHUB_LINE_TOO_LONG;
    }
    if (rx_[0] == 0) return IOTHUB_OK;
    return handleLine(rx_);
  }
  if (rxSkipping_) return IOTHUB_OK;
  if (rxLen_ == sizeof(rx_) - 1) {
    rxSkipping_ = true;
    return IOTHUB_OK;
  }
  rx_[rxLen_++] = c;
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::hubError(const char* text) {
  const char* message = text + 6;
  while (isSpace(*message)) message++;
  if (onError_) onError_(message);
  return IOTHUB_HUB_ERROR;
}

IoTHubStatus IoTHub::handleLine(const char* text) {
  if (startsWith(text, F_("error:"))) return hubError(text);
  if (text[0] == '{') return handleJson(text);
  // `stored=12`, or a command `LED=1,seq=12,dur=500`.
  Pairs pairs(text, ',');
  CommandParts c;
  while (pairs.next()) {
    if (same(pairs.key, pairs.keyLen, F_("stored"))) return handleStored(pairs.value, pairs.valueLen);
    c.take(pairs);
  }
  if (c.complete()) return runCommand(c.name, c.nameLen, c.value, c.valueLen, c.seq, c.seqLen, c.dur, c.durLen);
  // Anything else is a line someone typed in the dashboard's console.
  if (onLine_) onLine_(text);
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::handleJson(const char* text) {
  const char *stored, *name, *value, *seq, *dur = 0;
  uint8_t storedLen, nameLen, valueLen, seqLen, durLen = 0;
  if (jsonValue(text, F_("stored"), &stored, &storedLen)) return handleStored(stored, storedLen);
  if (jsonValue(text, F_("cmd"), &name, &nameLen) && jsonValue(text, F_("value"), &value, &valueLen) &&
      jsonValue(text, F_("seq"), &seq, &seqLen)) {
    jsonValue(text, F_("dur"), &dur, &durLen);
    return runCommand(name, nameLen, value, valueLen, seq, seqLen, dur, durLen);
  }
  if (onLine_) onLine_(text);
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::handleFrame(const char* text) {
  // `COMMAND=HELLO!`, `STORED=12`, `ERROR=…`, `COMMAND=SET|LED=1|SEQ=12|DUR=500`.
  Pairs pairs(text, '|');
  CommandParts c;
  bool set = false;
  while (pairs.next()) {
    if (same(pairs.key, pairs.keyLen, F_("command"))) {
      if (same(pairs.value, pairs.valueLen, F_("hello!"))) return handleHello();
      set = same(pairs.value, pairs.valueLen, F_("set"));
    } else if (same(pairs.key, pairs.keyLen, F_("stored"))) {
      return handleStored(pairs.value, pairs.valueLen);
    } else if (same(pairs.key, pairs.keyLen, F_("error"))) {
      if (onError_) onError_(pairs.value);
      return IOTHUB_HUB_ERROR;
    } else {
      c.take(pairs);
    }
  }
  if (set && c.complete()) return runCommand(c.name, c.nameLen, c.value, c.valueLen, c.seq, c.seqLen, c.dur, c.durLen);
  if (onLine_) onLine_(text);
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::handleHello() {
  // The hub answers our HELLO! and sends its own to a device that went quiet; answering its
  // answer would start an endless exchange, so only an unprompted one is answered.
  if (helloOut_) {
    helloOut_ = false;
  } else {
    putP(HELLO);
    flushOut();
  }
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::handleStored(const char* digits, uint8_t len) {
  uint32_t n;
  if (!parseU32(digits, len, &n)) return IOTHUB_BAD_MESSAGE;
  accepted_ = true;
  attempts_ = 0;
  // stored=n covers the readings numbered up to n that were written on this connection, and
  // never more: a reading not yet written cannot have been stored.
  int32_t covered = (int32_t)(n - ring_->headNumber) + 1;
  if (covered > (int32_t)sent_) covered = sent_;
  if (covered > 0) dropOldest((uint8_t)covered);
  return IOTHUB_OK;
}

IoTHubStatus IoTHub::runCommand(const char* name, uint8_t nameLen, const char* value, uint8_t valueLen,
                                const char* seq, uint8_t seqLen, const char* dur, uint8_t durLen) {
  uint32_t durationMs = 0;
  float v;
  // seq is echoed as the hub wrote it (it may exceed 32 bits), so only its form is checked.
  if (seqLen == 0 || seqLen > 20) return IOTHUB_BAD_MESSAGE;
  for (uint8_t i = 0; i < seqLen; i++) {
    if (seq[i] < '0' || seq[i] > '9') return IOTHUB_BAD_MESSAGE;
  }
  if (!parseFloat(value, valueLen, &v)) return IOTHUB_BAD_MESSAGE;
  if (dur != 0 && !parseU32(dur, durLen, &durationMs)) return IOTHUB_BAD_MESSAGE;
  const Command* command = 0;
  for (uint8_t i = 0; i < commandCount_; i++) {
    if (sameRam(name, nameLen, commands_[i].name)) command = &commands_[i];
  }
  if (command == 0) return IOTHUB_UNKNOWN_COMMAND;
  if (command->min <= command->max && (v < command->min || v > command->max)) return IOTHUB_COMMAND_REFUSED;
  if (!command->fn(v, durationMs)) return IOTHUB_COMMAND_REFUSED;
  // Acknowledged only now: an ack says the device did it, not that it heard of it.
  bool framed = format_ == IOTHUB_FRAMED;
  putP(framed ? F_("|START|ACK=") : F_("ack="));
  for (uint8_t i = 0; i < seqLen; i++) put(seq[i]);
  putP(framed ? F_("|END|") : F_("\n"));
  flushOut();
  return IOTHUB_COMMAND_DONE;
}
