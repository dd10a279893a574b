"""Learners: SympFlow, PINNs, and vector-field models for neural-ODE discovery."""
