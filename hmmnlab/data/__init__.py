"""Data: mask and frame files, DAVIS layout, synthetic sample videos."""
