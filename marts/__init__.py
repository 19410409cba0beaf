"""Marts and the code that publishes role views and exports. Issue 7."""
