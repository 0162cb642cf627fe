"""Agent roster and agent state machine (issue 3)."""
