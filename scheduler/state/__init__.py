"""What survives a restart: run history, each job's grid and last run, the jitter seed."""
