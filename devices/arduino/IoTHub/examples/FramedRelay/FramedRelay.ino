// A relay and a light sensor on an Arduino Uno with an Ethernet shield, speaking the hub's
// framed protocol (`|START|light=412|END|`), the form simple MQTT-like clients use. Framed
// devices cannot register, so the dashboard shows `RELAY` without a switch; send it from the
// console or the REST API (`"variable":"RELAY","value":1`). The library answers the hub's
// `COMMAND=HELLO!` keepalive and sends its own every 2 s.
//
// Hub side: `iothub serve --tcp-listen` and `iothub token create relay-1`. Built for an Uno
// by devices/test.sh (size check).

#include <SPI.h>
#include <Ethernet.h>
#include <IoTHub.h>

const char HUB_HOST[] = "192.168.1.10";
const uint16_t HUB_PORT = 5070;
const char TOKEN[] = "iot_paste_the_token_of_relay-1_here";
byte mac[] = {0xDE, 0xAD, 0xBE, 0xEF, 0xFE, 0x21};

const uint8_t RELAY_PIN = 7;
const uint8_t LIGHT_PIN = A1;  // a photoresistor divider

EthernetClient net;
IoTHubBuffer<6, 2> buffer;
IoTHub hub(net, buffer);
uint32_t lastReading = 0;
bool relayOn = false;

bool setRelay(float value, uint32_t) {
  relayOn = value >= 0.5f;
  digitalWrite(RELAY_PIN, relayOn ? HIGH : LOW);
  return true;
}

void setup() {
  pinMode(RELAY_PIN, OUTPUT);
  Ethernet.begin(mac);
  hub.setFormat(IOTHUB_FRAMED);
  hub.onCommand("RELAY", setRelay, 0, 1);  // the range is checked here too: no registration
  hub.begin(HUB_HOST, HUB_PORT, TOKEN);
}

void loop() {
  Ethernet.maintain();
  hub.loop();
  if (millis() - lastReading >= 5000) {
    lastReading += 5000;
    hub.add("light", (float)analogRead(LIGHT_PIN));
    hub.add("relay", relayOn ? 1.0f : 0.0f);
    hub.send();
  }
}
