// ESP32 ONLY — not compiled by devices/test.sh (Debian has no ESP32 toolchain); written for
// the Arduino-ESP32 core 2.x/3.x.
//
// A temperature sensor with a relay on an ESP32: the chip's own temperature every 10 s (swap
// in your sensor), a relay on GPIO 26 switched from the dashboard (`RELAY`, 0–1, shown as a
// switch thanks to the registration). Device times come from NTP, so readings buffered while
// the WiFi or the hub was away are stored with the time they were taken.
//
// Hub side: `iothub serve --tcp-listen` and `iothub token create greenhouse`. For TLS
// (`--tcp-tls` with the hub's certificate) define USE_TLS and paste the hub's CA below.

#include <WiFi.h>
#include <time.h>
#include <IoTHub.h>
#ifdef USE_TLS
#include <WiFiClientSecure.h>
#endif

const char WIFI_SSID[] = "your-network";
const char WIFI_PASSWORD[] = "your-password";
const char HUB_HOST[] = "192.168.1.10";
const uint16_t HUB_PORT = 5070;
const char TOKEN[] = "iot_paste_the_token_of_greenhouse_here";
const int RELAY_PIN = 26;

#ifdef USE_TLS
const char HUB_CA[] = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
WiFiClientSecure net;
#else
WiFiClient net;
#endif
IoTHubBuffer<120, 2> buffer;  // 20 minutes of readings kept while offline
IoTHub hub(net, buffer);
uint32_t lastReading = 0;
bool clockSet = false;

bool setRelay(float value, uint32_t durationMs) {
  digitalWrite(RELAY_PIN, value >= 0.5f ? HIGH : LOW);
  (void)durationMs;
  return true;
}

void onHubError(const char* text) { Serial.printf("hub says: %s\n", text); }

void setup() {
  Serial.begin(115200);
  pinMode(RELAY_PIN, OUTPUT);
  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  configTime(0, 0, "pool.ntp.org");  // UTC; the hub shows local time itself
#ifdef USE_TLS
  net.setCACert(HUB_CA);
#endif
  hub.setName("Greenhouse");
  hub.field("temp", "\xC2\xB0" "C");
  hub.field("relay");
  hub.onCommand("RELAY", setRelay, 0, 1);
  hub.onError(onHubError);
  IoTHubStatus status = hub.begin(HUB_HOST, HUB_PORT, TOKEN);
  if (status != IOTHUB_OK) Serial.printf("hub.begin: %s\n", iothubStatusName(status));
}

void loop() {
  // Once NTP has answered, readings carry device times (readings taken before are dated too:
  // the library keeps their millis() and converts when it sends).
  if (!clockSet) {
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    clockSet = hub.setTime(tv.tv_sec, tv.tv_usec / 1000) == IOTHUB_OK;
  }
  if (WiFi.status() == WL_CONNECTED) {
    IoTHubStatus status = hub.loop();
    if (status >= IOTHUB_ERRORS) Serial.printf("hub: %s\n", iothubStatusName(status));
  }
  if (millis() - lastReading >= 10000) {
    lastReading += 10000;
    hub.add("temp", temperatureRead());
    hub.add("relay", digitalRead(RELAY_PIN));
    hub.send();  // kept in the ring even while the WiFi is down
  }
  delay(5);
}
