"""`PrebuiltModel`: a `keras.Model` base for models built before `fit`."""

import keras


class PrebuiltModel(keras.Model):
    """Skips Keras' symbolic build under a `tf.distribute` strategy.

    Before the first `fit` under a strategy, Keras 3.15 averages one input
    batch across the replicas to build the model symbolically. That fails on
    string inputs (captions) under any strategy and on nested inputs (frames
    and audio) under `MultiWorkerMirroredStrategy`. These models are built
    when they are made (`build_model`), so only the optimizer is left to
    build, in the strategy's scope.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is not None and self.built:
            with self.distribute_strategy.scope():
                if self.optimizer is not None and not self.optimizer.built:
                    self.optimizer.build(self.trainable_variables)
            self._post_build()
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
