"""robustc.runtime."""
