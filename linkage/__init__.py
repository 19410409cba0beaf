"""Person linkage across agencies (Splink 5): standardisation, model, clustering, stable ids. Issue 6."""
