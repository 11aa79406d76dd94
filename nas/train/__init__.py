"""Training a chosen architecture fully, and evaluating trained models."""
