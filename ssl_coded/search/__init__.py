"""Nearest-neighbour search, as the training monitor, the run summary and `ssl-coded eval` all use it:
`knn.py` (the one kNN path: banks, votes, the dino and instdisc presets), `exact_search.py` (the
certified bf16 search that returns the fp32 answer), `calibration.py` (whether bf16 products are faster
than fp32 on this machine, measured once and cached; it also decides bf16 training) and `hardware.py`
(the CPU's name and flags). Torch and numpy only, like the rest of the core.
"""
