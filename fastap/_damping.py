"""The damping a message state runs with: this iteration's and the last one's.

The fused passes finish iteration t-1's off-diagonal availabilities inside
pass t, so a state needs two dampings: the one of the next iteration and the
one the last iteration ran with (a change between the two must not reach
back). Every engine keeps them the same way, through this mixin.
"""


class DampingPairs:
    """Mixin for message states: ``damping`` (next iteration), ``last_damping``
    (the last iteration's) as floats, and both as ``(d, 1 - d)`` pairs in the
    messages' dtype (``1 - d`` computed in float64 first, as scikit-learn).

    The state provides ``dtype`` and ``availability_pending`` (True while
    the last iteration's availabilities wait to be finished).
    """

    def set_damping(self, damping):
        """Use ``damping`` from the next iteration on."""
        scalar = self.dtype.type
        self.damping = float(damping)
        self.damping_pair = (scalar(damping), scalar(1 - damping))
        if not self.availability_pending:
            self.keep_damping_as_last()

    def keep_damping_as_last(self):
        """The next iteration's damping becomes the last one's (after an
        iteration ran, or while nothing is pending)."""
        self.last_damping = self.damping
        self.last_damping_pair = self.damping_pair
