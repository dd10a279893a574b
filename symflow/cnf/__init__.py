"""Continuous normalizing flows, flow matching and Liouville density transport."""
