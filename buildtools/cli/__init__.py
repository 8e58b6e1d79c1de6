"""What the tasks print: plans, summaries and warnings for people (JSON for scripts)."""
