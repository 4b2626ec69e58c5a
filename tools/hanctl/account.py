"""`hanctl account`: replay a capture through the firmware's decoder and accounting module.

Prints one JSON line per hour whose end has a register, and one per month at the month's
end and at the end of the input (firmware/accounting.py has the rules). Values are kWh as
exact decimals; `hour` is the start of the hour in meter time. With quarter hours
(`"tariff": {"period_min": 15}`) each hour's line comes after its four quarters' lines,
`{"quarter": start, "active_energy_import": kWh, "estimated": bool}`, and the month's peaks
are quarters.
"""

import json
import sys

from . import decode, runtime


def register(subparsers):
    parser = subparsers.add_parser(
        "account",
        help="hourly energy and the month's capacity step from a capture",
        description="Replay a capture (hex text or raw bytes, as `hanctl decode` takes) "
        "through the firmware's decoder and accounting module. Prints a JSON line per hour "
        "whose end has a register, and per month at its end and at the end of the input.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a config.json whose `tariff` gives the ladder (steps_kw) and the time zone",
    )
    parser.add_argument("file", nargs="?", default="-", metavar="CAPTURE|-")
    parser.set_defaults(run=run_command)


def run_command(args):
    try:
        tariff = _tariff(args.config) if args.config else None
    except (OSError, ValueError) as err:
        print(f"hanctl account: {err}", file=sys.stderr)
        return 2
    try:
        capture = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    except OSError as err:
        print(f"hanctl account: {err}", file=sys.stderr)
        return 2
    try:
        account(capture.fileno(), tariff, sys.stdout)
        return 0
    except (OSError, ValueError) as err:
        print(f"hanctl account: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if capture is not sys.stdin.buffer:
            capture.close()


def _tariff(path):
    with open(path, encoding="utf-8") as f:
        try:
            cfg = json.load(f)
        except ValueError as err:
            raise ValueError(f"{path}: not JSON ({err})") from None
    tariff = cfg.get("tariff") if isinstance(cfg, dict) else None
    if tariff is None:
        return None
    # The dongle's own check of "tariff" (firmware/config.py), so that the replay takes
    # exactly what the dongle would, with the same messages.
    runtime.use_firmware_in_cpython()
    import config

    pr = config._Problems()
    tariff = config._tariff(pr, tariff)
    problems = pr.result()
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return tariff


def lines(readings, tariff=None):
    """The JSON-able lines of the readings (dicts of the firmware's values), in order."""
    runtime.use_firmware_in_cpython()
    import accounting  # firmware/accounting.py

    out = []

    def on_hour(hour, imp, exp, estimated):
        out.append(
            {
                "hour": hour,
                "active_energy_import": _num(accounting.kwh(imp)),
                "active_energy_export": _num(accounting.kwh(exp)),
                "estimated": estimated,
            }
        )

    def on_quarter(hour, k, imp, estimated):
        out.append(
            {
                "quarter": accounting.hour_text(hour, k),
                "active_energy_import": _num(accounting.kwh(imp)),
                "estimated": estimated,
            }
        )

    def on_month(m):
        lo, hi = m["step"]
        out.append(
            {
                "month": m["month"],
                "peaks": [
                    {
                        "hour": accounting.hour_text(p[0], p[2] if len(p) > 2 else 0),
                        "active_energy_import": _num(accounting.kwh(p[1])),
                    }
                    for p in m["peaks"]
                ],
                "capacity_kw": _num(accounting.kwh(m["capacity_w"])),
                "step": [
                    _num(accounting.kwh(lo)),
                    None if hi is None else _num(accounting.kwh(hi)),
                ],
            }
        )

    acc = accounting.Accounting(tariff, on_hour=on_hour, on_month=on_month, on_quarter=on_quarter)
    for reading in readings:
        acc.offer(reading)
        yield from out
        out.clear()
    acc.finish()
    yield from out


def _num(text):
    # Shortest round-trip repr: a decimal of up to 15 digits prints as itself.
    return int(text) if "." not in text else float(text)


def account(fd, tariff, out):
    head, whole, _ = decode._head(fd)
    chunks = decode._chunks(fd, head, decode.looks_hex(head, whole))
    runtime.use_firmware_in_cpython()
    from decoder import Decoder  # firmware/decoder.py

    readings = []
    decoder = Decoder(readings.append)

    def stream():
        for chunk in chunks:
            decoder.feed(chunk)
            yield from readings
            readings.clear()
        decoder.end()
        yield from readings

    for line in lines(stream(), tariff):
        out.write(json.dumps(line) + "\n")
