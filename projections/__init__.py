"""Read side: deterministic folds over the event log, rebuildable from zero."""
