#include "PosixClient.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int PosixClient::connectTimeoutMs = 2000;

uint32_t millis() {
  // Monotonic, like a board's millis(): a wall-clock step must not look like time passing.
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

void delay(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

int PosixClient::connect(IPAddress ip, uint16_t port) {
  char host[16];
  snprintf(host, sizeof(host), "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
  return connect(host, port);
}

int PosixClient::connect(const char* host, uint16_t port) {
  stop();
  char service[8];
  snprintf(service, sizeof(service), "%u", port);
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* found = nullptr;
  if (getaddrinfo(host, service, &hints, &found) != 0) return -1;
  int result = -1;
  for (struct addrinfo* a = found; a && result < 0; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    // Non-blocking connect with a deadline, as a board's stack has one too; a hub that is down
    // on this machine refuses at once anyway.
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
      struct pollfd p = {fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof(err);
      if (poll(&p, 1, connectTimeoutMs) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
        rc = 0;
      }
    }
    if (rc == 0) {
      int one = 1;
      // Lines are written whole; Nagle would only delay a command's ack.
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      fd_ = fd;
      closed_ = false;
      start_ = end_ = 0;
      result = 1;
    } else {
      close(fd);
    }
  }
  freeaddrinfo(found);
  return result;
}

size_t PosixClient::write(const uint8_t* buf, size_t size) {
  size_t done = 0;
  while (fd_ >= 0 && done < size) {
    ssize_t n = send(fd_, buf + done, size - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = {fd_, POLLOUT, 0};
      if (poll(&p, 1, 5000) != 1) break;  // a peer that reads nothing for 5 s is gone
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  return done;
}

void PosixClient::fill() {
  if (fd_ < 0 || closed_ || start_ < end_) return;
  start_ = end_ = 0;
  ssize_t n = recv(fd_, buf_, sizeof(buf_), MSG_DONTWAIT);
  if (n > 0) {
    end_ = (size_t)n;
  } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    closed_ = true;
  }
}

int PosixClient::available() {
  fill();
  return (int)(end_ - start_);
}

int PosixClient::read() {
  fill();
  return start_ < end_ ? buf_[start_++] : -1;
}

int PosixClient::read(uint8_t* buf, size_t size) {
  fill();
  size_t n = end_ - start_ < size ? end_ - start_ : size;
  memcpy(buf, buf_ + start_, n);
  start_ += n;
  return n ? (int)n : -1;
}

int PosixClient::peek() {
  fill();
  return start_ < end_ ? buf_[start_] : -1;
}

void PosixClient::stop() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  closed_ = false;
  start_ = end_ = 0;
}

uint8_t PosixClient::connected() {
  // Like Arduino's: still "connected" while unread data remains after the peer closed.
  fill();
  return fd_ >= 0 && (!closed_ || start_ < end_);
}
