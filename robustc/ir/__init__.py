"""robustc.ir."""
