# The firmware part of every board's frozen image (boards/<name>/manifest.py includes it):
# each module the dongle runs, compiled as hanctl installs it, run from flash instead of
# being loaded into the heap from the file system. By layer, bottom up, as
# docs/architecture.md draws them; host_tests/test_boards.py checks that this is exactly
# what the boot can import.
#
# Not frozen: main.py, the boot file, which MicroPython runs from the file system as source;
# hal_unix.py and hal_unix_wifi.py, the unix port's hardware layer.

DECODER = (
    # frames, checksums, the link layers
    "crc16", "framing", "marks", "link", "gbt",
    # ciphered APDUs (loaded at the first one), and Luxembourg's ciphered P1 telegrams
    "gcm", "security", "p1cipher",
    # DLMS/COSEM, the OBIS table and the vendor quirks, P1 telegrams, the canonical reading
    "errors", "axdr", "dlms", "obis", "objlist", "kaifa", "kamstrup", "iskraemeco", "normalize",
    "p1", "reading", "decoder",
)  # fmt: skip
RUNTIME = (
    "uptime", "share", "outbox", "mqtt", "discovery", "destination", "meterlink", "config",
    # the web server, HomeWizard's local API and the owner's page (each loaded when
    # config.json turns it on; page_settings for a login or the settings alone,
    # page_stream while a browser watches the live view)
    "httpd", "local_api", "page", "page_status", "page_settings", "page_save", "page_stream",
    "web",
    # the capacity tariff (loaded when a destination gets it)
    "accounting", "settlement", "tariff",
    # the registers counted on between them for Home Assistant (loaded with discovery)
    "energynow", "energyfeed",
    # setup mode: the access point and the captive portal's DNS (loaded only there)
    "captive", "portal",
    "dongle", "startup",
)  # fmt: skip
# the hardware (and setup mode's Wi-Fi, loaded there only), and the files kept through a
# power cut
BOARD = ("hal_esp32", "hal_esp32_wifi", "store")

for name in BOARD + DECODER + RUNTIME:
    # Relative paths in a manifest are resolved from the manifest's own folder. opt=3 as
    # runtime.DEFAULT_OPT ships the .mpy files: no line numbers in tracebacks.
    module(name + ".py", base_path="../firmware", opt=3)  # noqa: F821 - given by makemanifest
