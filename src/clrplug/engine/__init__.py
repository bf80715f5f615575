"""The engine: a schedule's rate computed in the compiled step, and what a fit installs.

``base`` holds what every schedule shares (its numbers as constants of the traced step,
a held plain rate, evaluation), ``step`` computes the rate and momentum from those
numbers with ``keras.ops``, ``twins`` checks the ops form of policies and waveforms
against their numpy reference, ``rate`` is what a callback installs on its optimizer
for a fit (and the numbers its checkpoints carry), and ``compat`` is the one place that
touches Keras internals. docs/how-it-works.md explains the design.
"""
