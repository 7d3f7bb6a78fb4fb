"""One training and evaluation engine for every experiment."""
