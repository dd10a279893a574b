"""Diagnostics: energy error and drift, symplecticity defect, Poincaré sections, plots, reports."""
