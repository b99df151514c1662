"""The `?delay=` of a send, as Restate 1.7 reads it: an ISO 8601 duration (`PT1S`, `P1DT2H`) or the
"friendly" format (`1s`, `1000ms`, `1h 30m`, `2 hours`). A bare number has no unit and is refused, with
Restate's message."""

from __future__ import annotations

import re

PREFIX = "bad delay query parameter, must be a ISO8601 duration: "

_MS = {"y": 365.25 * 86400e3, "mo": 30.436875 * 86400e3, "w": 7 * 86400e3, "d": 86400e3, "h": 3600e3,
       "m": 60e3, "s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
_UNITS = {
    "y": ("y", "yr", "yrs", "year", "years"), "mo": ("mo", "mos", "month", "months"),
    "w": ("w", "wk", "wks", "week", "weeks"), "d": ("d", "day", "days"),
    "h": ("h", "hr", "hrs", "hour", "hours"), "m": ("m", "min", "mins", "minute", "minutes"),
    "s": ("s", "sec", "secs", "second", "seconds"),
    "ms": ("ms", "msec", "msecs", "millisecond", "milliseconds"),
    "us": ("us", "µs", "usec", "usecs", "microsecond", "microseconds"),
    "ns": ("ns", "nsec", "nsecs", "nanosecond", "nanoseconds"),
}
_UNIT_OF = {spelling: unit for unit, spellings in _UNITS.items() for spelling in spellings}
_FRIENDLY_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zµ]*)\s*,?", re.IGNORECASE)
_ISO = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
                  r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?", re.IGNORECASE)


class BadDelay(ValueError):
    """The delay could not be read; the message is Restate's."""


def parse_delay_ms(text: str) -> int:
    """Milliseconds of a `?delay=` value; raises BadDelay with Restate's 400 message."""
    s = text.strip()
    if s[:1] in ("P", "p"):
        return _iso_ms(s)
    return _friendly_ms(s)


def _iso_ms(s: str) -> int:
    m = _ISO.fullmatch(s)
    if m is None or not any(m.groups()) or s.upper().endswith("T"):
        raise BadDelay(PREFIX + f"failed to parse {s!r} as an ISO 8601 duration")
    y, mo, w, d, h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
    total = y * _MS["y"] + mo * _MS["mo"] + w * _MS["w"] + d * _MS["d"] + h * _MS["h"] + mi * _MS["m"]
    return round(total + sec * _MS["s"])


def _friendly_ms(s: str) -> int:
    sign = -1 if s.startswith("-") else 1
    rest = s.lstrip("+-").strip()
    if not rest or not rest[0].isdigit():
        raise BadDelay(PREFIX + 'failed to parse input in the "friendly" duration format: expected duration to '
                       "start with a unit value (a decimal integer) after an optional sign, but no integer was found")
    total, pos = 0.0, 0
    while pos < len(rest):
        m = _FRIENDLY_PART.match(rest, pos)
        if m is None or m.end() == pos:
            raise BadDelay(PREFIX + 'failed to parse input in the "friendly" duration format: unexpected '
                           f"input at {rest[pos:]!r}")
        number, unit = m.group(1), m.group(2).lower()
        if not unit:
            raise BadDelay(PREFIX + 'failed to parse input in the "friendly" duration format: expected to find '
                           "unit designator suffix (e.g., `years` or `secs`) after parsing integer")
        if unit not in _UNIT_OF:
            raise BadDelay(PREFIX + 'failed to parse input in the "friendly" duration format: unrecognized unit '
                           f"designator {unit!r}")
        total += float(number) * _MS[_UNIT_OF[unit]]
        pos = m.end()
    if sign < 0:
        raise BadDelay(PREFIX + "a delay must not be negative")
    return round(total)
