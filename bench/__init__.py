"""dbwire's benchmarks: dbwire against the raw libraries beneath it (`python -m bench`)."""
