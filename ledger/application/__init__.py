"""Use cases: run loops and command handling over the domain and the ports."""
