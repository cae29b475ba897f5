"""Robustness: the attacks, the attack harness with randomized coded inference, the seed summary and
the decoding-fidelity sweep. Models come in as callables from [0, 1] pixels to logits."""
