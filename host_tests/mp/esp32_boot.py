# The ESP32's boot on the unix port: what firmware/main.py does on a board, with the
# hardware layer named, as startup would pick hal_unix here. host_tests/mp/esp32_model/
# stands in for the port's machine, network and ntptime (test_hal_esp32.py puts it on
# MicroPython's path and names the world the model runs in).
import hal_esp32
import startup

startup.main(hal_esp32)
