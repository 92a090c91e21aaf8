"""Offline datasets for MBDPO (TD-MPC2 .pt chunks -> .npz). Skeleton: see README."""

__version__ = "0.1.0"
