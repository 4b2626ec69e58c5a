# HomeWizard's local API v1 (api-documentation.homewizard.com, "v1"), so that its clients
# (Home Assistant's HomeWizard integration, evcc, openHAB, home batteries) read hanport as
# they read a HomeWizard P1 meter:
#   GET /api               the device: product_type, product_name, serial, firmware_version,
#                          api_version "v1"
#   GET /api/v1/data       the newest values, in HomeWizard's names and units
#   GET /api/v1/telegram   the newest P1 telegram as the meter sent it (P1 meters only)
#
# Off unless config.json says `"local_api": {"enabled": true, "share": ...}`: API v1 has no
# authentication, so anyone on the LAN reads what the share level lets through (README,
# "The local API"). The share level works as a destination's (share.py); the meter's
# identity (unique_id) needs "full", or a field list naming meter_id; the raw telegram
# needs "full".
#
# Values come from the canonical reading, exact: registers stay integer + decimal exponent
# to the JSON text (reading.py), and import minus export is done on integers. Values are
# kept per field (a List 1 push carries power alone, List 2 voltages and currents too,
# List 3 the energy registers once an hour), so /api/v1/data holds the newest of each; only
# fields of obis.py's table are kept, a fixed set, whatever the meter sends.

from binascii import hexlify

import framing
from httpd import JSON, MEMORY, TEXT
from obis import METER_ID, METER_MODEL, ORDER, UNIT
from reading import put, value_json
from share import Share

PRODUCT_TYPE = "HWE-P1"  # what clients check, with api_version, to know the endpoints


def mount(cfg, dongle, hal, server):
    """Serve the local API of config cfg for dongle on its web server (httpd.Server, which
    dongle.py made and set listening): the LocalApi."""
    where = hal.listen()  # "listen": a name the image has, no qstr of ours (STYLE: heap)
    uid = where and where[2]
    if uid is None or len(uid) != 6:
        # HomeWizard's serial is the MAC address, 12 hex digits; without one, the first
        # 6 bytes of the hostname's SHA-256, so it stays the same across restarts.
        import hashlib

        uid = hashlib.sha256(dongle.cfg["hostname"].encode()).digest()[:6]
    api = LocalApi(cfg, dongle.version, hexlify(uid).decode())
    api.server = server
    server.route("/api", api.device)
    server.route("/api/v1/data", api.data)
    server.route("/api/v1/telegram", api.p1_telegram)
    if api.share.level == "full":
        dongle.decoder.on_frame = api.offer_frame  # the P1 telegram, as the meter sent it
    hal.log("local API on", "%s:%d" % (where[0], where[1]))
    return api


class LocalApi:
    def __init__(self, cfg, version, serial):
        """cfg: config's checked "local_api"; serial: 12 hex digits naming this dongle."""
        self.share = Share(cfg)
        self.version = version
        self.serial = serial
        self.values = {}  # canonical field -> newest value, fields of obis.py's table only
        self.telegram = None  # bytearray holding the newest P1 telegram, made at the first
        self.telegram_len = 0
        self.server = None  # httpd.Server, set by start()
        self.gas_id = None  # the gas meter's equipment id (P1, "full" only): see offer()

    def stats(self):
        """The web server's answers and refusals, by status code (httpd.Server.counts)."""
        return self.server.counts

    def offer(self, reading, now_ms):
        """A new canonical reading: what the share level lets through is kept. Never
        raises: called from the meter link, which must not end (a MemoryError is counted
        as the server's `memory`, and the next reading tried)."""
        try:
            view = self.share.view(reading, now_ms)
            if view is not None:
                values = self.values
                for f in view:
                    if f in UNIT:  # of the OBIS table: a fixed set, whatever the meter sends
                        values[f] = view[f]
                if "gas_volume" in view and self.share.level == "full":
                    self.gas_id = gas_id(view)
        except MemoryError:
            self.server.count(MEMORY)

    def offer_frame(self, kind, buf, n):
        """A frame buf[:n] that made a reading: the newest P1 telegram is kept, for "full"
        only (it holds every register and the meter's identity). Never raises, as offer()."""
        if kind != framing.P1:
            return
        t = self.telegram
        if t is None or len(t) < n:
            # One buffer, grown only when a telegram is longer than all before (the same
            # meter sends nearly the same length each time); n <= the frame bound (2 KB).
            self.telegram = None  # the old one may go before the new one is made
            self.telegram_len = 0
            try:
                self.telegram = t = bytearray(n + 32)
            except MemoryError:
                self.server.count(MEMORY)
                return
        try:
            t[:n] = memoryview(buf)[:n]  # no slice of buf: it would be a copy
        except MemoryError:  # the views themselves: this is the decoder's call, never raise
            self.server.count(MEMORY)
            return
        self.telegram_len = n

    def device(self, request):
        return (
            200,
            JSON,
            (
                '{"product_type": "%s", "product_name": "hanport", "serial": "%s", '
                '"firmware_version": "%s", "api_version": "v1"}'
                % (PRODUCT_TYPE, self.serial, self.version)
            ),
        )

    def data(self, request):
        # Written into the request's own buffer, which the server holds anyway: no answer
        # of ~800 B to find room for in a heap the meter's frames fragment.
        buf = request.buf
        return 200, JSON, memoryview(buf)[: data_json(self.values, buf, self.gas_id)]

    def p1_telegram(self, request):
        if not self.telegram_len:
            # HomeWizard's devices that read no P1 meter have no such endpoint.
            if self.share.level != "full":
                return 403, JSON, '{"error": {"id": 403, "description": "share is not full"}}'
            return 404, JSON, '{"error": {"id": 404, "description": "no P1 telegram read"}}'
        return 200, TEXT, memoryview(self.telegram)[: self.telegram_len]


def gas_id(reading):
    """The equipment id of the P1 meter's gas meter in reading (the M-Bus channel n whose
    0-n:24.1.0 device type is 3, its 0-n:96.1.0, or 96.1.1 in Belgium), or None. At most 48
    characters, as DSMR bounds it (96 hex digits): a longer one is no id."""
    for n in "1234":
        if reading.get("0-%s:24.1.0" % n) == 3:
            for e in "01":
                v = reading.get("0-%s:96.1.%s" % (n, e))
                if v.__class__ is str and 0 < len(v) <= 48:
                    return v
    return None


def data_json(values, buf, gas=None):
    """Write the JSON of /api/v1/data from canonical values (field -> int, (mantissa,
    exponent) or str) into the bytearray buf; where it ends (OverflowError if it does not
    fit). HomeWizard's names follow from the canonical ones and their units (no table of
    names: each string of one took heap):
        active_power_import_l1 - active_power_export_l1   -> active_power_l1_w
        reactive_power_import - reactive_power_export     -> active_reactive_power_var
        voltage_l1, current_l1, frequency, power_factor   -> active_voltage_l1_v, ...
        active_energy_import_t1                           -> total_power_import_t1_kwh
        gas_volume, gas_time                              -> total_gas_m3, gas_timestamp
    With gas, the gas meter's equipment id (gas_id(), "full" only) adds gas_unique_id and
    the gas meter in "external", where Home Assistant's HomeWizard integration looks for
    it (since 2024: it makes the gas sensor from there)."""
    n = put(buf, 0, "{")
    sep = ""
    v = values.get(METER_MODEL)
    if v.__class__ is str:  # the meter's text; anything else a hostile line sent, left out
        n = put(buf, n, '"meter_model": ' + value_json(v))
        sep = ", "
    v = values.get(METER_ID)
    if v.__class__ is str:
        # HomeWizard sends the meter's equipment id hex-coded, as DSMR writes it (its
        # clients decode it); the canonical reading holds it as text.
        n = put(buf, n, '%s"unique_id": "%s"' % (sep, hexlify(v.encode()).decode().upper()))
        sep = ", "
    for f in ORDER:
        unit = UNIT[f]
        v = _exact(values.get(f))
        name = None
        if unit == "W" or unit == "var":
            i = f.find("_import")
            if i > 0:
                name = ("active_" if unit == "var" else "") + f[:i] + f[i + 7 :]
                b = _exact(values.get(f[:i] + "_export" + f[i + 7 :]))
                v = None if v is None and b is None else _minus(v or 0, b or 0)
        elif unit == "kWh":
            if f[:14] == "active_energy_" and f[-3:-1] != "_l":  # not per phase
                name = "total_power_" + f[14:]
                if v is None and f.endswith("port"):  # per tariff only (P1): their sum
                    for t in ("_t1", "_t2", "_t3", "_t4"):
                        x = _exact(values.get(f + t))
                        if x is not None:
                            v = x if v is None else _plus(v, x)
        elif unit == "V" or unit == "A" or unit == "Hz" or f[:12] == "power_factor":
            name = "active_" + f
        if name is not None and v is not None:
            unit = "_" + unit.lower() if unit else ""
            n = put(buf, n, '%s"%s%s": %s' % (sep, name, unit, number(v)))
            sep = ", "
    v = _exact(values.get("gas_volume"))
    if v is not None:
        v = number(v)
        gas_json = '%s"total_gas_m3": %s' % (sep, v)
        t = values.get("gas_time")  # "YYYY-MM-DDTHH:MM:SS" -> YYMMDDhhmmss, HomeWizard's
        t = t[2:4] + t[5:7] + t[8:10] + t[11:13] + t[14:16] + t[17:19] if t.__class__ is str else ""
        if len(t) == 12 and t.isdigit():
            t = str(int(t))  # a JSON number has no leading 0 (years 2000-2009)
            gas_json += ', "gas_timestamp": ' + t
            if gas is not None:
                gas = hexlify(gas.encode()).decode().upper()  # hex-coded, as DSMR writes it
                gas_json += (', "gas_unique_id": "%s", "external": [{"unique_id": "%s", '
                             '"type": "gas_meter", "timestamp": %s, "value": %s, "unit": "m3"}]'
                             % (gas, gas, t, v))  # fmt: skip
        # With the closing brace. Every field at its longest (what a hostile line could
        # send) leaves no room for it in the request's buffer: the gas is then left out.
        if n + len(gas_json) < len(buf):
            n = put(buf, n, gas_json)
    return put(buf, n, "}")


def _exact(v):
    """v when it is a register value (an int, or mantissa and exponent), else None: a meter
    line may send a bool, a null or octets where a number belongs (normalize.py keeps
    them), and the answer must still be made."""
    if v.__class__ is int or v.__class__ is tuple and len(v) == 2:
        return v
    return None


def _pair(v):
    return (v, 0) if v.__class__ is int else v


def _plus(a, b):
    (m, e), (k, f) = _pair(a), _pair(b)
    if e > f:
        m, e, k, f = k, f, m, e
    return (m + k * 10 ** (f - e), e)  # e <= f: b's mantissa scaled to a's exponent


def _minus(a, b):
    m, e = _pair(b)
    return _plus(a, (-m, e))


def number(v):
    """JSON number of a register value: an int, or (mantissa, exponent) as exact decimal."""
    m, e = _pair(v)
    if e >= 0:
        return "%d" % (m * 10**e)
    p = 10**-e
    sign = "-" if m < 0 else ""
    m = -m if m < 0 else m
    return "%s%d.%0*d" % (sign, m // p, -e, m % p)
