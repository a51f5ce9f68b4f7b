"""Programs the integration tests run in their own processes."""
