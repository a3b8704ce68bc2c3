// IoTHub: the device side of the iothub raw TCP protocol, for any Arduino `Client`
// (WiFiClient, EthernetClient, WiFiClientSecure with the hub's --tcp-tls).
//
// What it does for a sketch:
// - connects, sends its token first, registers (fields with units, commands with ranges);
// - sends readings, one line each (key=value, or JSON when the reading carries a device
//   time, since the hub reads device times only from JSON; or classic `ID,v1,v2` CSV; or
//   `|START|…|END|` frames);
// - keeps every reading in a fixed ring until the hub answers `stored=<n>` to a `sync=<n>`
//   that followed it, so readings taken offline, or lost with a dropped connection, go out
//   after the next connect, with their device times;
// - calls command handlers and acknowledges (`ack=<seq>`) after the handler returns;
// - keeps the connection alive and notices a dead one, reconnecting with exponential backoff
//   and jitter.
//
// Memory: nothing is allocated after construction (no String, no new/malloc). The ring is
// the sketch's `IoTHubBuffer<READINGS, VALUES>`, a plain struct, so it can also live in
// memory that survives deep sleep (ESP32 `RTC_DATA_ATTR`). Every other size is fixed per
// platform below; change one only with a compiler flag (-D…, PlatformIO `build_flags`), which
// reaches the library's .cpp too: a `#define` in the sketch would not, and the two would
// disagree about the object's layout.
//
// Names (fields, units, commands, host, token, id) are kept as pointers, not copied: pass
// string literals or buffers that live as long as the hub object.

#ifndef IOTHUB_H
#define IOTHUB_H

#include <Arduino.h>
#include <Client.h>

#if defined(__AVR__)
// An Uno has 2 KiB of RAM: these are the smallest that still carry every message the hub
// sends to a device with short command names.
#ifndef IOTHUB_RX_BYTES
#define IOTHUB_RX_BYTES 64
#endif
#ifndef IOTHUB_TX_BYTES
#define IOTHUB_TX_BYTES 48
#endif
#ifndef IOTHUB_MAX_FIELDS
#define IOTHUB_MAX_FIELDS 6
#endif
#ifndef IOTHUB_MAX_COMMANDS
#define IOTHUB_MAX_COMMANDS 3
#endif
#else
#ifndef IOTHUB_RX_BYTES
#define IOTHUB_RX_BYTES 256
#endif
#ifndef IOTHUB_TX_BYTES
#define IOTHUB_TX_BYTES 256
#endif
#ifndef IOTHUB_MAX_FIELDS
#define IOTHUB_MAX_FIELDS 16
#endif
#ifndef IOTHUB_MAX_COMMANDS
#define IOTHUB_MAX_COMMANDS 8
#endif
#endif

// What a call did. Values at or above IOTHUB_ERRORS mean the call did not do what was asked.
enum IoTHubStatus {
  IOTHUB_OK = 0,          // done (a reading: written to the connection; loop(): all well)
  IOTHUB_QUEUED,          // send(): kept in the ring, goes out once connected
  IOTHUB_DROPPED_OLDEST,  // send(): kept, but the ring was full and its oldest reading is gone
  IOTHUB_WAITING,         // loop(): offline, waiting for the next connection attempt
  IOTHUB_CONNECTED,       // loop(): connected just now
  IOTHUB_COMMAND_DONE,    // loop(): a command was handled and acknowledged
  IOTHUB_ERRORS = 16,
  IOTHUB_NOT_STARTED = IOTHUB_ERRORS,  // begin() was not called (or failed)
  IOTHUB_BAD_ARGUMENT,    // a null or empty host/token, port 0, min > max, …
  IOTHUB_BAD_NAME,        // a field or command name the protocol cannot carry, or reserved
  IOTHUB_BAD_VALUE,       // NaN or infinite: the hub refuses them
  IOTHUB_NO_VALUES,       // send() without add()
  IOTHUB_TOO_MANY_VALUES, // more add() calls than the ring's VALUES per reading
  IOTHUB_TOO_MANY_FIELDS, // more distinct field names than IOTHUB_MAX_FIELDS
  IOTHUB_TOO_MANY_COMMANDS,
  IOTHUB_CONNECT_FAILED,  // loop(): a connection attempt failed just now
  IOTHUB_CONNECTION_LOST, // loop(): the connection closed, a write failed or the hub went silent
  IOTHUB_HUB_ERROR,       // loop(): the hub sent an `error: …` line (see onError)
  IOTHUB_LINE_TOO_LONG,   // loop(): a line from the hub did not fit IOTHUB_RX_BYTES; skipped
  IOTHUB_UNKNOWN_COMMAND, // loop(): a command without a handler: not acknowledged
  IOTHUB_COMMAND_REFUSED, // loop(): out of the declared range, or the handler said no
  IOTHUB_BAD_MESSAGE      // loop(): a malformed message from the hub; ignored
};

// A short English name for a status, for logs. On AVR the names are kept in flash and copied
// into one small buffer, which the next call overwrites.
const char* iothubStatusName(IoTHubStatus status);

// How readings are written.
enum IoTHubFormat {
  IOTHUB_AUTO = 0,   // key=value (`temp=23.5`); JSON when the reading has a device time
  IOTHUB_KEY_VALUE,  // always key=value: no device times
  IOTHUB_JSON,       // always JSON (`{"temp":23.5,"ts":…}`)
  IOTHUB_CSV,        // the classic positional line `ID,v1,v2` (needs setId): no device times
  IOTHUB_FRAMED      // `|START|temp=23.5|END|` frames (no registration, no device times)
};

// A command handler: the value and the duration in ms (0 if none). Return true to
// acknowledge; false leaves the command unacknowledged (the hub then times it out).
typedef bool (*IoTHubCommandFn)(float value, uint32_t durationMs);
// Told the text of an `error: …` line, or a line the library does not understand.
typedef void (*IoTHubTextFn)(const char* text);
// A clock in ms that keeps counting as long as readings must stay comparable (millis() by
// default; across deep sleep, one backed by the RTC).
typedef uint32_t (*IoTHubClockFn)();

// The ring's parts. Plain data on purpose: no constructor, so a static one starts zeroed,
// and one in RTC memory keeps its contents across deep sleep (begin() checks `magic`).
struct IoTHubValue {
  uint8_t field;  // index into the hub's field table
  float value;
};
struct IoTHubReadingHead {
  uint32_t stamp;  // the clock when the reading was sent (see IoTHubClockFn)
  uint8_t count;   // values in use
};
struct IoTHubRingState {
  uint32_t magic;       // a fixed value once begin() has set the ring up
  uint32_t headNumber;  // number of the oldest reading kept; readings are numbered in order
  uint8_t capacity;
  uint8_t perReading;
  uint8_t head;         // slot of the oldest reading
  uint8_t count;        // readings kept (sent or not, but not yet stored)
};

// READINGS readings of up to VALUES values each, kept until the hub has stored them.
// On an Uno one reading of 2 values takes 15 bytes.
template <uint8_t READINGS, uint8_t VALUES = 2>
struct IoTHubBuffer {
  IoTHubRingState state;
  IoTHubReadingHead heads[READINGS];
  IoTHubValue values[READINGS][VALUES];
};

class IoTHub {
 public:
  template <uint8_t READINGS, uint8_t VALUES>
  IoTHub(Client& client, IoTHubBuffer<READINGS, VALUES>& buffer)
      : IoTHub(client, buffer.state, buffer.heads, &buffer.values[0][0], READINGS, VALUES) {}

  // Where the hub is and the device token (nullptr: a tokenless hub; then call setId first).
  // Does not connect: loop() does. Checks the ring (one kept across deep sleep stays).
  IoTHubStatus begin(const char* host, uint16_t port, const char* token);

  // Options, before or after begin(); a change to the format or registration takes effect at
  // the next connection.
  IoTHubStatus setId(const char* id);            // the device id (CSV lines, tokenless hubs)
  IoTHubStatus setName(const char* name);        // the name the dashboard shows
  IoTHubStatus setFormat(IoTHubFormat format);
  IoTHubStatus setKeepalive(uint32_t ms);        // send something after this much silence
  IoTHubStatus setBackoff(uint32_t minMs, uint32_t maxMs);
  IoTHubStatus setClock(IoTHubClockFn clock);
  // The wall time now, as seconds and ms since 1970: from then on readings carry device
  // times (`ts`). Split in two so that an 8-bit board never needs 64-bit arithmetic.
  IoTHubStatus setTime(uint32_t epochSeconds, uint16_t ms = 0);

  // Registration: a field with its unit (optional: add() also declares), a command handler
  // with its range (min > max, the default, means none declared).
  IoTHubStatus field(const char* name, const char* unit = nullptr);
  IoTHubStatus onCommand(const char* name, IoTHubCommandFn fn, float min = 1, float max = 0);
  void onError(IoTHubTextFn fn) { onError_ = fn; }
  void onLine(IoTHubTextFn fn) { onLine_ = fn; }

  // A reading: add() its values, then send() it (stamped now) into the ring; it goes out at
  // once if connected. A reading is not lost if add() fails: send what was added, or discard().
  IoTHubStatus add(const char* field, float value);
  IoTHubStatus send();
  void discard() { staged_ = 0; }

  // Call often: connects, reads, handles commands, keeps alive, sends what waits. Not from a
  // command handler (a handler may send() a reading, though).
  IoTHubStatus loop();
  // Closes the connection (loop() connects again unless end() is called).
  IoTHubStatus stop();
  IoTHubStatus end();

  bool connected() const { return state_ == CONNECTED; }
  uint8_t pending() const { return ring_->count; }        // readings not yet stored
  uint8_t capacity() const { return ring_->capacity; }
  uint16_t connections() const { return connections_; }  // successful connects so far
  uint32_t dropped() const { return dropped_; }           // readings lost to a full ring

 private:
  IoTHub(Client& client, IoTHubRingState& state, IoTHubReadingHead* heads, IoTHubValue* values,
         uint8_t capacity, uint8_t perReading);

  enum State { IDLE, OFFLINE, CONNECTED };
  struct Command {
    const char* name;
    IoTHubCommandFn fn;
    float min, max;
  };

  // Connection
  void dropConnection();
  IoTHubStatus connectNow(uint32_t now);
  void scheduleRetry(uint32_t now);
  uint32_t random32();
  uint32_t keepalive() const;
  // Sending
  bool sendGreeting();
  bool sendRegistration();
  void sendSync();
  void sendHello();
  uint8_t flushReadings(uint32_t now, bool wantSync);
  void writeReading(uint8_t index);
  bool takeToken(uint32_t now);
  // Receiving
  IoTHubStatus receive(uint32_t now);
  IoTHubStatus handleByte(char c);
  IoTHubStatus handleLine(const char* text);
  IoTHubStatus handleFrame(const char* text);
  IoTHubStatus handleJson(const char* text);
  IoTHubStatus handleStored(const char* digits, uint8_t len);
  IoTHubStatus handleHello();
  IoTHubStatus runCommand(const char* name, uint8_t nameLen, const char* value, uint8_t valueLen,
                          const char* seq, uint8_t seqLen, const char* dur, uint8_t durLen);
  IoTHubStatus hubError(const char* text);
  // Ring
  uint8_t slot(uint8_t offset) const;
  IoTHubValue* valuesOf(uint8_t slotIndex) const { return values_ + (uint16_t)slotIndex * ring_->perReading; }
  void dropOldest(uint8_t n);
  int8_t fieldIndex(const char* name, bool declare);
  // Output: a small buffer, written out when full or at the end of a message.
  void put(char c);
  void put(const char* s);   // from RAM
  void putP(const char* s);  // from flash (PROGMEM on AVR)
  void putJsonString(const char* s);
  void putU32(uint32_t v);
  void putFloat(float v);
  void putTime(uint32_t stamp);
  void flushOut();

  Client& client_;
  IoTHubRingState* ring_;
  IoTHubReadingHead* heads_;
  IoTHubValue* values_;

  const char* host_;
  const char* token_;
  const char* id_;
  const char* name_;
  IoTHubClockFn clock_;
  IoTHubTextFn onError_;
  IoTHubTextFn onLine_;
  const char* fields_[IOTHUB_MAX_FIELDS];
  const char* units_[IOTHUB_MAX_FIELDS];
  Command commands_[IOTHUB_MAX_COMMANDS];

  uint32_t keepaliveMs_;
  uint32_t backoffMinMs_;
  uint32_t backoffMaxMs_;
  uint32_t nextAttemptAt_;
  uint32_t lastRx_;
  uint32_t lastTx_;
  uint32_t syncSentAt_;
  uint32_t tokensAt_;
  uint32_t rng_;
  uint32_t dropped_;
  // setTime(): the wall time at clock value timeBase_
  uint32_t timeSec_;
  uint32_t timeBase_;
  uint16_t timeMs_;
  uint16_t port_;
  uint16_t connections_;

  uint8_t ringCapacity_;  // the shape of the sketch's IoTHubBuffer
  uint8_t ringPerReading_;
  uint8_t state_;
  uint8_t format_;
  uint8_t fieldCount_;
  uint8_t commandCount_;
  uint8_t staged_;       // values add()ed to the reading being built
  uint8_t sent_;         // readings from the head already written on this connection
  uint8_t attempts_;     // failed connection attempts in a row
  uint8_t tokens_;       // messages the rate limit still allows now
  bool timeSet_;
  bool stagedDropped_;   // starting the reading being built pushed the oldest out
  bool helloOut_;        // our HELLO! awaits its answer (framed)
  bool accepted_;        // the hub answered on this connection: the backoff starts over
  bool writeFailed_;
  bool rxSkipping_;      // the line being received did not fit: skip to its end
  uint8_t endMatch_;     // while skipping a frame: how much of "|END|" was seen
  uint16_t rxLen_;
  uint16_t txLen_;
  char rx_[IOTHUB_RX_BYTES];
  char tx_[IOTHUB_TX_BYTES];
};

#endif
