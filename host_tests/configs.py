"""Configurations and answers the tests share: the example config.json (test_config.py,
test_config_fuzz.py) and the wizard's answers for two networks and two destinations
(test_wizard.py, test_privacy.py)."""

WIFI_PW = "correct horse"
BROKER_PW = "s3cret-broker"
# A complete config.json: every top-level key, and one destination with TLS, a password and
# discovery; real passwords ("..." is too short for a Wi-Fi passphrase).
EXAMPLE = {
    "wifi": [{"ssid": "home", "password": WIFI_PW}],
    "hostname": "hanport-1a2b3c",
    "board": "esp32-devkit-tss721",
    "meter": {"baud": "auto", "parity": "auto", "invert": False},
    "ntp": "pool.ntp.org",
    "destinations": [
        {
            "name": "home-assistant",
            "host": "192.168.1.10",
            "port": 1883,
            "user": "hanport",
            "password": BROKER_PW,
            "tls": {"ca": "ca.pem"},
            "topic": "hanport/1a2b3c",
            "share": "full",
            "discovery": True,
        }
    ],
}


# The passwords the wizard's answers below give (Wi-Fi 1, Wi-Fi 2, the first destination's).
SECRETS = ("wifi-pass-1", "cabin pass 2", "mqtt-secret-3")

TWO_NETWORKS_TWO_DESTINATIONS = [
    "home",  # Wi-Fi network 1
    SECRETS[0],  # its password
    "cabin",  # Wi-Fi network 2
    SECRETS[1],
    "",  # no third network
    "hanport-1a2b3c",  # hostname
    "2",  # board: the second of the list, esp32c3-reader
    "",  # meter link: auto
    "",  # it does not encrypt
    "",  # NTP: pool.ntp.org
    "home-assistant",  # destination 1
    "192.168.1.10",
    "y",  # TLS
    "",  # CA file: ca.pem
    "",  # port: 8883, the validator's default with TLS
    "hanport",  # user
    SECRETS[2],  # password
    "",  # topic: hanport/1a2b3c
    "full",
    "y",  # discovery
    "hourly-stats",  # destination 2
    "broker.example.net",
    "",  # no TLS
    "",  # port 1883
    "",  # no user
    "energy/house",
    "hourly",
    "",  # no discovery
    "",  # no third destination
]
