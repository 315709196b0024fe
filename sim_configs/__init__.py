"""pyvisa-sim device definitions shipped as package data."""
