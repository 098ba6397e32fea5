"""Analyses of trained networks: what their features and outputs reveal beyond the scores."""
