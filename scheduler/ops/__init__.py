"""What an operator sees: logs, metrics, health and the endpoint that serves them."""
