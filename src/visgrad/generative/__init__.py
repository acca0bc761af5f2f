"""What the generative models (:mod:`visgrad.gan`, :mod:`visgrad.diffusion`) share: the exponential moving
average of a network's weights (:mod:`visgrad.generative.ema`) and the class labels of a conditional
generator's grids (:mod:`visgrad.generative.labels`)."""
