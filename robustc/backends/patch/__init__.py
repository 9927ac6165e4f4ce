"""Weight-patch encodings (Goldberger et al.) and sign marking (Elboher et al.)."""
