// Just enough of Arduino.h for IoTHub and its host test to build with g++ on Linux: the
// library needs only millis(), the fixed-width types and the Client interface (Client.h).
#ifndef HOST_ARDUINO_H
#define HOST_ARDUINO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

uint32_t millis();
void delay(uint32_t ms);

#include "Print.h"

#endif
