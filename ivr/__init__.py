"""Call trees for clinic phone lines: YAML language, validator and a pure interpreter.

Public entry points:

- :func:`ivr.tree.load_tree` reads and validates a YAML call tree.
- :func:`ivr.interpreter.start` / :func:`ivr.interpreter.step` run a call as a pure
  state machine: ``step(state, event) -> (state, commands)``.
- :mod:`ivr.simulate` drives the interpreter with scripted keys and a virtual clock.
"""

__version__ = "0.1.0"
