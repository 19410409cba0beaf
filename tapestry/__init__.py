"""Tapestry core: settings, the lakehouse connection, the command line."""
