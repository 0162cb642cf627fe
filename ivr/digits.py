"""Checks on digits a caller entered: dates of birth, member numbers, phone numbers.

Returns a short reason (never the digits themselves) so the reason can go into
traces and logs without leaking PHI.
"""

from __future__ import annotations

import re
from datetime import date

from ivr.schema import Validation

# Emergency and crisis short codes (North America, Europe, UK, Australia, Asia): the IVR never dials them.
# 988 (US crisis lifeline) is deliberately not here: a clinic may transfer a caller in crisis to it.
EMERGENCY_NUMBERS = frozenset({"911", "112", "999", "000", "110", "119", "118", "113"})
PHI_KINDS = frozenset({"date_of_birth", "member_number", "phone"})  # validations whose digits identify a patient


def is_emergency_number(number: str) -> bool:
    """True for an emergency code, also behind an outside-line or country prefix (9-911, +1 911, +44 999).

    A short number (six digits or fewer) that ends in an emergency code is treated as one: real
    subscriber numbers are longer, and a false alarm here costs an admin a rename, a miss costs a
    dispatcher's line.
    """
    target = number.strip()
    if "/" in target and not target.lower().startswith(("tel:", "sip:", "sips:")):
        tech, _, rest = target.partition("/")  # PJSIP/1001 is a local endpoint; PJSIP/911@trunk dials out
        if "@" not in rest:
            return False
        target = rest
    if target.lower().startswith(("client:",)):
        return False
    user = target.split("@")[0].split(":")[-1]
    digits = "".join(ch for ch in user if ch.isdigit())
    if not digits:
        return False
    return digits in EMERGENCY_NUMBERS or (len(digits) <= 6 and any(digits.endswith(e) for e in EMERGENCY_NUMBERS))


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
