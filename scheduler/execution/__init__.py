"""How a run happens: the executor, one run of a job, the HTTP call, run events."""
