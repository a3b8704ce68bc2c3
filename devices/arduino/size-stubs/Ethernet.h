// Stands in for the Arduino Ethernet library in devices/test.sh's Uno size check only: that
// library is not among Debian's packages, so the figures measured are the sketch, IoTHub and
// the Arduino core, and the budget leaves room for the real network library beside them.
// Every function does nothing; it is never run.
#ifndef SIZE_STUB_ETHERNET_H
#define SIZE_STUB_ETHERNET_H

#include <Arduino.h>
#include <Client.h>

class EthernetClient : public Client {
 public:
  int connect(IPAddress, uint16_t) override { return 0; }
  int connect(const char*, uint16_t) override { return 0; }
  size_t write(uint8_t) override { return 0; }
  size_t write(const uint8_t*, size_t) override { return 0; }
  int available() override { return 0; }
  int read() override { return -1; }
  int read(uint8_t*, size_t) override { return -1; }
  int peek() override { return -1; }
  void flush() override {}
  void stop() override {}
  uint8_t connected() override { return 0; }
  operator bool() override { return false; }
};

class EthernetClass {
 public:
  int begin(uint8_t*) { return 0; }
  int maintain() { return 0; }
};

static EthernetClass Ethernet;

#endif
