"""ssl-coded: coded-smoothing (arXiv 2510.00253) as a regularizer and defence for PyTorch."""

from ssl_coded.coding import CodingScheme, coding_matrices
from ssl_coded.hook import CodedSmoothingHook, SubmoduleCandidate, attach_coded_smoothing
from ssl_coded.inference import randomized_coded_predict
from ssl_coded.regularizer import CodedSmoothing

__all__ = [
    "CodedSmoothing",
    "CodedSmoothingHook",
    "CodingScheme",
    "SubmoduleCandidate",
    "attach_coded_smoothing",
    "coding_matrices",
    "randomized_coded_predict",
]
__version__ = "0.1.0"
