"""Pure domain: events, numbers, identifiers and the decision rules (stdlib only)."""
