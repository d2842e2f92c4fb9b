"""When runs fire: schedules as APScheduler triggers, jitter, restart planning."""
