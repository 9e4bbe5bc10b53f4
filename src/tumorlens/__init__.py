"""tumorlens: explainable brain-tumour classification of MRI slices. Research use only, not a medical device."""
from .config import CLASSES, DISCLAIMER, TumorlensError

__version__ = "0.1.0"
__all__ = ["CLASSES", "DISCLAIMER", "TumorlensError", "__version__"]
