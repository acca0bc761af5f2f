"""What the generative models (:mod:`visgrad.gan`, :mod:`visgrad.diffusion`) share: the exponential moving
average of a network's weights (:mod:`visgrad.generative.ema`)."""
