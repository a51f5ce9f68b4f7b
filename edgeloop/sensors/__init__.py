"""Sensors: device agents, device twins, the simulated yard and its on-device heads."""
