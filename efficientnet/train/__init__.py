"""Training: the one loop, its config, losses, schedules, EMA and distribution."""
