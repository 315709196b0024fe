"""The protocol layer: Procedures, plan, safety rules, results, command line."""
