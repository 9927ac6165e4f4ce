"""robustc.specs."""
