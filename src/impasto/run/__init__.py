"""Running an optimisation: the schedule, the inputs and targets at a size, the
evaluators of loss and gradient, the loop and its saved state.

Nothing is imported here, so that ``impasto.settings`` can use the schedule
without importing torch; import the modules themselves.
"""
