// The part of Arduino's Print/Stream/IPAddress that Client.h builds on. Same virtual
// functions as the AVR core's, so code written against these compiles there unchanged.
#ifndef HOST_PRINT_H
#define HOST_PRINT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

class Print {
 public:
  virtual ~Print() {}
  virtual size_t write(uint8_t) = 0;
  virtual size_t write(const uint8_t* buffer, size_t size) {
    size_t n = 0;
    while (size-- && write(*buffer++)) n++;
    return n;
  }
  size_t print(const char* s) { return write((const uint8_t*)s, strlen(s)); }
};

class Stream : public Print {
 public:
  virtual int available() = 0;
  virtual int read() = 0;
  virtual int peek() = 0;
  virtual void flush() = 0;
};

class IPAddress {
 public:
  IPAddress() : bytes_{0, 0, 0, 0} {}
  IPAddress(uint8_t a, uint8_t b, uint8_t c, uint8_t d) : bytes_{a, b, c, d} {}
  uint8_t operator[](int i) const { return bytes_[i]; }
  uint8_t* raw_address() { return bytes_; }

 private:
  uint8_t bytes_[4];
};

#endif
