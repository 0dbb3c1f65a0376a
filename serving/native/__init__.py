"""Run both model servers natively: one supervisor for `make serve` and the test fixtures alike."""
