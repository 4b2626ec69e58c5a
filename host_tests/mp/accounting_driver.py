"""Run under the MicroPython unix port: the accounting module over readings from stdin.

stdin: one JSON reading a line (kWh registers as [mantissa, exponent], made tuples here);
a line "STATE" saves state() through JSON and goes on in a new Accounting, as a reboot
does; a first line "TARIFF {...}" gives the config's tariff. stdout: one JSON line per
closed quarter (with quarter hours), hour, month, then the state's size in bytes.
"""

import json
import sys

import accounting


def on_hour(hour, imp, exp, estimated):
    print(json.dumps(["hour", hour, imp, exp, estimated]))


def on_quarter(hour, k, imp, estimated):
    print(json.dumps(["quarter", accounting.hour_text(hour, k), imp, estimated]))


def on_month(m):
    print(json.dumps(["month", m["month"], m["peaks"], m["capacity_w"], list(m["step"])]))


tariff = None
acc = accounting.Accounting(tariff, None, on_hour, on_month, on_quarter)
for line in sys.stdin:
    line = line.strip()
    if line.startswith("TARIFF "):
        tariff = json.loads(line[7:])
        acc = accounting.Accounting(tariff, None, on_hour, on_month, on_quarter)
        continue
    if line == "STATE":
        state = json.loads(json.dumps(acc.state()))
        acc = accounting.Accounting(tariff, state, on_hour, on_month, on_quarter)
        continue
    r = json.loads(line)
    for k in r:
        if type(r[k]) is list:
            r[k] = tuple(r[k])
    acc.offer(r)
acc.finish()
print(json.dumps(["state", len(json.dumps(acc.state()))]))
