"""The simulated SourceMeter: skin phantom, SMU model, faults, pyvisa backend."""
