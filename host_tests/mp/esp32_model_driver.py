# Statements on the model of the ESP32 port (host_tests/mp/esp32_model/) under the MicroPython
# unix port, for test_hal_esp32.py: one case per stdin line, "<id> <statement>", all in
# one namespace, so a case may use what an earlier one made. Prints one line per case,
#   case ["<id>", "ok", "<repr of _>"]                 (a case may leave a value in _)
#   case ["<id>", "<exception type>", ["<arg>", ...]]
# among the model's own "esp32-model:" lines.

import json
import sys

namespace = {}
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        continue
    case_id, code = line.split(" ", 1)
    namespace["_"] = None
    try:
        exec(code, namespace)
        result = [case_id, "ok", repr(namespace["_"])]
    except Exception as e:  # the outcome is the case's result, whatever it is
        result = [case_id, type(e).__name__, [str(a) for a in e.args]]
    print("case", json.dumps(result))
