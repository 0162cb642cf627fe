"""Skill-based routing: matches waiting calls to agents (issue 3).

The call-tree interpreter hands a call to routing with an ``Enqueue`` command
carrying the queue name and requirements; this package will decide who gets it.
"""
