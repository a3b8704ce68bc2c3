// The classic mbed-style sender, on an Arduino Uno with an Ethernet shield (W5100/W5500):
// every second one line `7,<counter>,<temp>` (device id, send counter, temperature) to the
// hub's raw TCP port, and an LED the dashboard switches (`LED`, 0 or 1, optionally for a
// duration). Readings taken while the hub is unreachable wait in an 8-reading ring and go
// out, in order, when it is back; only the hub's stored= lets them go.
//
// Hub side: `iothub serve --tcp-listen` (port 5070) and a token for device 7:
// `iothub token create 7`. Built for an Uno by devices/test.sh (size check).

#include <SPI.h>
#include <Ethernet.h>
#include <IoTHub.h>

const char HUB_HOST[] = "192.168.1.10";  // the machine running iothub
const uint16_t HUB_PORT = 5070;
const char TOKEN[] = "iot_paste_the_token_of_device_7_here";
byte mac[] = {0xDE, 0xAD, 0xBE, 0xEF, 0xFE, 0x07};

const uint8_t LED_PIN = 13;   // the on-board LED
const uint8_t TEMP_PIN = A0;  // a TMP36: 10 mV per °C, 500 mV at 0 °C

EthernetClient net;
IoTHubBuffer<8, 2> buffer;  // 8 readings of 2 values: 120 bytes
IoTHub hub(net, buffer);
uint32_t counter = 0;
uint32_t lastReading = 0;
uint32_t ledOffAt = 0;  // when a command with a duration ends (0: none)

bool setLed(float value, uint32_t durationMs) {
  digitalWrite(LED_PIN, value >= 0.5f ? HIGH : LOW);
  // `LED=1,dur=500`: on for half a second. The ack goes once this returns, i.e. once the LED
  // is on, not when it goes off again.
  ledOffAt = durationMs ? (millis() + durationMs) | 1 : 0;
  return true;
}

float readTemperature() {
  float millivolts = analogRead(TEMP_PIN) * (5000.0f / 1023.0f);
  return (millivolts - 500.0f) / 10.0f;
}

void setup() {
  pinMode(LED_PIN, OUTPUT);
  Serial.begin(115200);
  // DHCP; a board without a lease keeps measuring and buffering, and the hub object retries.
  if (Ethernet.begin(mac) == 0) Serial.println(F("no DHCP lease yet"));
  hub.setId("7");
  hub.setFormat(IOTHUB_CSV);  // the classic positional line, named by the registration below
  hub.setName("Uno 7");
  hub.field("counter");
  hub.field("temp", "\xC2\xB0" "C");
  hub.onCommand("LED", setLed, 0, 1);
  IoTHubStatus status = hub.begin(HUB_HOST, HUB_PORT, TOKEN);
  if (status != IOTHUB_OK) {
    Serial.print(F("hub.begin failed: "));
    Serial.println(status);
  }
}

void loop() {
  Ethernet.maintain();
  IoTHubStatus status = hub.loop();
  if (status >= IOTHUB_ERRORS) {
    // Numbers rather than names: iothubStatusName()'s strings would cost an Uno 300 bytes of RAM.
    Serial.print(F("hub: status "));
    Serial.println(status);
  }
  if (millis() - lastReading >= 1000) {
    lastReading += 1000;
    hub.add("counter", (float)++counter);
    hub.add("temp", readTemperature());
    if (hub.send() == IOTHUB_DROPPED_OLDEST) Serial.println(F("offline too long: oldest reading dropped"));
  }
  if (ledOffAt && (int32_t)(millis() - ledOffAt) >= 0) {
    digitalWrite(LED_PIN, LOW);
    ledOffAt = 0;
  }
}
