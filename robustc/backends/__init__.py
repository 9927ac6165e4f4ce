"""robustc.backends."""
