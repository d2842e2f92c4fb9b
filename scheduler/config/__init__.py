"""Reading the configuration: jobs.yaml (the job catalogue) and the environment."""
