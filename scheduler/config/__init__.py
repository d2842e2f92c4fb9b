"""Reading the configuration: jobs.yaml (the catalogue) and the environment."""
