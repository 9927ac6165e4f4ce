"""robustc.compiler."""
