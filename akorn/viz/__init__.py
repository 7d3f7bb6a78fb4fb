"""Seeing synchronisation: projections of oscillator states to colour, animations, plots, an index page."""
