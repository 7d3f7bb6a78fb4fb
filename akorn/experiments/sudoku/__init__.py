"""Sudoku reasoning with AKOrN: data, solver and generator, models, training, inference."""
