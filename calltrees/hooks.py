"""Example lookup hooks for the sample trees (fake data, no real patients).

A real deployment replaces these with calls to its scheduling system or EHR.
Use: ``ivr simulate calltrees/clinic-main.yaml --hooks calltrees/hooks.py``.
"""

from ivr.hooks import register


@register("find_appointment")
def find_appointment(args: dict) -> dict:
    return {"date": "Thursday, December 3rd at 10:15 a.m.", "id": "A-1017"}


@register("cancel_appointment")
def cancel_appointment(args: dict) -> dict:
    return {"cancelled": True}


@register("refill_status")
def refill_status(args: dict) -> dict:
    return {"status": "ready"}
