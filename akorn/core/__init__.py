"""The maths of AKOrN: oscillators, couplings, GTA, the Kuramoto layer, readouts, stacks and baselines.

``akorn.core.maths`` states the equations plainly; ``akorn.core.fast`` holds the faster
implementations of the same arithmetic that the layer uses.
"""
