"""Tests of the example data sets and networks under examples/."""
