// Arduino's Client over a POSIX TCP socket, so that IoTHub runs on Linux unchanged: the test
// drives the real library against a real hub through this.
#ifndef POSIX_CLIENT_H
#define POSIX_CLIENT_H

#include "Client.h"

class PosixClient : public Client {
 public:
  PosixClient() : fd_(-1), closed_(false), start_(0), end_(0) {}
  ~PosixClient() { stop(); }

  int connect(IPAddress ip, uint16_t port) override;
  int connect(const char* host, uint16_t port) override;
  size_t write(uint8_t b) override { return write(&b, 1); }
  size_t write(const uint8_t* buf, size_t size) override;
  int available() override;
  int read() override;
  int read(uint8_t* buf, size_t size) override;
  int peek() override;
  void flush() override {}
  void stop() override;
  uint8_t connected() override;
  operator bool() override { return fd_ >= 0; }

  // For tests: how long connect() waits for the handshake.
  static int connectTimeoutMs;

 private:
  // Reads what the socket has without blocking; notes an orderly close.
  void fill();

  int fd_;
  bool closed_;
  size_t start_, end_;
  uint8_t buf_[1024];
};

#endif
