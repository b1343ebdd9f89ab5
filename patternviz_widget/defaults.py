"""The method's defaults, written once. Every module that needs one imports it from here.

The values are the official code's hyper-parameters (paper Sec. 3.2-3.4); docs/method.md lists
them with their meaning.
"""

from __future__ import annotations

#: τ: a region is a knowledge point when max_c p(c | h) ≥ τ (paper Sec. 3.4).
THRESHOLD = 0.4
#: T: the temperature of the network's posterior p(c | x) = softmax(z / T) (paper Sec. 3.2).
TEMPERATURE = 4.0
#: The seed of region sampling and of every fit (the official code's).
SEED = 2020
#: κ_max of the sample-embedding table (paper Sec. 3.2).
SAMPLE_KAPPA_MAX = 10.0
#: κ_max of the region table (paper Sec. 3.3, 3.4).
REGION_KAPPA_MAX = 1000.0
#: κ_m of the importance stage, calibrated in the official code for K = 512 channels.
IMPORTANCE_KAPPA_M = 1000.0
#: The channel count that κ_m was set for (VGG-16's conv_53).
IMPORTANCE_KAPPA_M_CHANNELS = 512
