"""kdzoo: efficient video classification by knowledge distillation.

A teacher sees all N frames of a video; a student sees only k of them and learns
from the teacher's video embedding and predictions (Bhardwaj, Srinivasan, Khapra,
"Efficient Video Classification Using Fewer Frames", CVPR 2019).
"""

__version__ = "0.1.0"
