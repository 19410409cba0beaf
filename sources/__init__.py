"""One package per agency (reader + contract), shared format readers, raw landing, synthetic data."""
