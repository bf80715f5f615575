"""The engine: a schedule's state in optimizer variables and its rate computed in the step.

``state`` packs a schedule's numbers into two optimizer variables, ``step`` computes
the rate and momentum from them with ``keras.ops``, ``twins`` checks the ops form of
policies and waveforms against their numpy reference, and ``compat`` is the one place
that touches Keras internals. docs/how-it-works.md explains the design.
"""

# Keras first, while no engine module is half-imported: importing Keras runs clrplug's
# pending registrations (clrplug._keras_import), which import the engine themselves.
import keras  # noqa: F401
