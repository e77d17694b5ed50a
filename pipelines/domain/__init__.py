"""Domain types shared by pipelines and serving (no IO, no venue specifics)."""
