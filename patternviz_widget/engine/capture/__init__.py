"""Capture: probe data with labels and masks, forward hooks on named layers, region grids."""
