// ESP32 ONLY — not compiled by devices/test.sh (Debian has no ESP32 toolchain); written for
// the Arduino-ESP32 core 2.x/3.x.
//
// A sensor that sleeps: it wakes every minute, takes a reading into a ring kept in RTC memory
// (which survives deep sleep), and only every tenth wake — or when the ring is half full —
// starts WiFi, sends what it has, waits for the hub's stored= and sleeps again. The radio is
// the battery's big cost, so it runs one wake in ten. Each reading keeps the time it was taken:
// the RTC clock keeps counting through deep sleep, and the library is told to stamp with it.
//
// Hub side: `iothub serve --tcp-listen` and `iothub token create shed`.

#include <WiFi.h>
#include <sys/time.h>
#include <IoTHub.h>

const char WIFI_SSID[] = "your-network";
const char WIFI_PASSWORD[] = "your-password";
const char HUB_HOST[] = "192.168.1.10";
const uint16_t HUB_PORT = 5070;
const char TOKEN[] = "iot_paste_the_token_of_shed_here";
const uint64_t SLEEP_US = 60ULL * 1000000ULL;
const uint8_t SEND_EVERY = 10;

// In RTC memory: zeroed on power-up, kept across deep sleep. The library checks it in
// begin() and starts afresh if it is not a ring of this shape.
RTC_DATA_ATTR IoTHubBuffer<32, 2> buffer;
RTC_DATA_ATTR uint32_t wakes = 0;
RTC_DATA_ATTR bool clockEverSet = false;

WiFiClient net;
IoTHub hub(net, buffer);

// ms from the RTC-backed system clock: unlike millis(), it does not start over on each wake,
// so readings from earlier wakes and this one stay comparable.
uint32_t rtcMillis() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return (uint32_t)((uint64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

float readBattery() { return analogReadMilliVolts(35) * 2 / 1000.0f; }  // a 1:2 divider

void sleepNow() {
  WiFi.disconnect(true);
  esp_sleep_enable_timer_wakeup(SLEEP_US);
  esp_deep_sleep_start();
}

// True once the system clock holds a real date (NTP answered on some earlier wake).
bool clockNow() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return hub.setTime(tv.tv_sec, tv.tv_usec / 1000) == IOTHUB_OK;
}

void setup() {
  wakes++;
  hub.setClock(rtcMillis);
  hub.field("temp", "\xC2\xB0" "C");  // same order on every wake: readings in the ring point at
  hub.field("battery", "V");          // fields by their place in this list
  hub.begin(HUB_HOST, HUB_PORT, TOKEN);
  bool radio = !clockEverSet || wakes % SEND_EVERY == 0 || hub.pending() >= buffer.state.capacity / 2;
  if (radio) WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  if (!clockEverSet) {
    // The first wake after power-up dates nothing before NTP has answered: the clock jumps by
    // decades then, and a stamp from before the jump would get a made-up time.
    configTime(0, 0, "pool.ntp.org");
    uint32_t start = millis();
    while (!clockNow() && millis() - start < 15000) delay(100);
    clockEverSet = clockNow();
    if (!clockEverSet) sleepNow();  // try again next wake
  }
  clockNow();
  hub.add("temp", temperatureRead());
  hub.add("battery", readBattery());
  hub.send();
  if (!radio) sleepNow();
  uint32_t start = millis();
  // Up to 15 s: enough for WiFi, the hub and its stored=; what is not confirmed stays for the
  // next time.
  while (millis() - start < 15000 && hub.pending() > 0) {
    if (WiFi.status() == WL_CONNECTED) hub.loop();
    delay(10);
  }
  sleepNow();
}

void loop() {}
