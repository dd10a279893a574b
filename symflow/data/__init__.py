"""Trajectory data: the HDF5 schema, simulation to file, validation, PyTorch datasets."""
