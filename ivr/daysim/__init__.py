"""The day simulator (``ivr simulate-day``): a contact-center day on a virtual clock.

The real call-tree interpreter and the real router run a whole day of calls from a
scenario file; the KPIs come out of :mod:`routing.kpis`, as they do for live traffic.
"""
