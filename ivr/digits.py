"""Checks on digits a caller entered: dates of birth, member numbers, phone numbers.

Returns a short reason (never the digits themselves) so the reason can go into
traces and logs without leaking PHI.
"""

from __future__ import annotations

import re
from datetime import date

from ivr.schema import Validation

_DOB_ORDER = {"MMDDYYYY": (0, 2, 4), "DDMMYYYY": (2, 0, 4), "YYYYMMDD": (4, 6, 0)}


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum many member and card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def validate_digits(digits: str, rule: Validation, today: date) -> str | None:
    """None when ``digits`` pass ``rule``; otherwise a reason without the digits."""
    if not digits.isdigit():
        return "not all digits"
    if rule.kind == "date_of_birth":
        if len(digits) != 8:
            return f"a date of birth has 8 digits ({rule.format})"
        mi, di, yi = _DOB_ORDER[rule.format]
        if rule.format == "YYYYMMDD":
            y, m, d = int(digits[0:4]), int(digits[4:6]), int(digits[6:8])
        else:
            m, d, y = int(digits[mi:mi + 2]), int(digits[di:di + 2]), int(digits[yi:yi + 4])
        try:
            dob = date(y, m, d)
        except ValueError:
            return "not a calendar date"
        if dob > today:
            return "date of birth in the future"
        if y < today.year - 130:
            return "date of birth too far in the past"
        return None
    if rule.kind == "phone":
        if len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        if len(digits) != 10 or digits[0] in "01" or digits[3] in "01":
            return "not a 10-digit phone number"
        return None
    if rule.pattern is not None and not re.fullmatch(rule.pattern, digits):
        return "does not match the expected pattern"
    if rule.luhn and not luhn_ok(digits):
        return "check digit does not match"
    return None
