"""Entry points: the command line."""
