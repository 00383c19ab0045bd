"""Consumer: takes batches of run messages, starts what it may, runs it, reports in bulk."""
