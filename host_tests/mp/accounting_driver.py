"""Run under the MicroPython unix port: the accounting module over readings from stdin.

stdin: one JSON reading a line (kWh registers as [mantissa, exponent], made tuples here);
a line "STATE" saves state() through JSON and goes on in a new Accounting, as a reboot
does. stdout: one JSON line per closed hour, per month, then the state's size in bytes.
"""

import json
import sys

import accounting


def on_hour(hour, imp, exp, estimated):
    print(json.dumps(["hour", hour, imp, exp, estimated]))


def on_month(m):
    print(json.dumps(["month", m["month"], m["peaks"], m["capacity_w"], list(m["step"])]))


acc = accounting.Accounting(None, None, on_hour, on_month)
for line in sys.stdin:
    line = line.strip()
    if line == "STATE":
        acc = accounting.Accounting(None, json.loads(json.dumps(acc.state())), on_hour, on_month)
        continue
    r = json.loads(line)
    for k in r:
        if type(r[k]) is list:
            r[k] = tuple(r[k])
    acc.offer(r)
acc.finish()
print(json.dumps(["state", len(json.dumps(acc.state()))]))
