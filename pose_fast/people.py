"""What counts as a person: a decoded pose with enough evidence; the rest are fragments.

The decoder returns every group of at least three connected keypoints, exactly as the reference does. Some of those
groups are not people: an arm or a head split off a person, or a few keypoints on a person half out of the frame.
A person counts when its pose score is at least ``min_score`` and it has at least ``min_keypoints`` keypoints.
Fragments are drawn faintly, but not counted, tracked or exported as people.

The pose score is the reference's: (sum of keypoint and limb scores) × (keypoints − 1), so it grows with the square
of the keypoints found: a whole standing person scores 150–500, a person far away or half hidden 20–100, a fragment
of three keypoints 1–8. The defaults were read off every frame of the four shared videos (1,623 frames): with them
the one signer of ``asl-walk.mkv`` is one person on every frame, the corridor of
``one-by-one-person-detection.mp4`` never shows two, and the small shoppers at the back of
``store-aisle-detection.mp4`` (scores from 20) still count.

>>> people, fragments = PersonFilter().split(poses)          # doctest: +SKIP
"""
from __future__ import annotations

from numbers import Real

import numpy as np

from .poses import Poses
from .skeleton import NUM_KEYPOINTS

__all__ = ["MIN_KEYPOINTS", "MIN_POSE_SCORE", "PersonFilter"]

#: A pose scoring less than this is a fragment.
MIN_POSE_SCORE = 10.0
#: A pose with fewer keypoints than this is a fragment.
MIN_KEYPOINTS = 4


class PersonFilter:
    """Splits decoded poses into people and fragments.

    Parameters
    ----------
    min_score : float
        The lowest pose score that is a person (``--min-pose-score``); ``0`` keeps every pose.
    min_keypoints : int
        The fewest keypoints (score above 0) that are a person, 0 to 18.
    """

    def __init__(self, min_score: float = MIN_POSE_SCORE, min_keypoints: int = MIN_KEYPOINTS):
        if isinstance(min_score, bool) or not isinstance(min_score, Real) or not 0 <= min_score < float("inf"):
            raise ValueError(f"the minimum pose score must be a number of at least 0, got {min_score!r}")
        if (isinstance(min_keypoints, bool) or not isinstance(min_keypoints, (int, np.integer))
                or not 0 <= min_keypoints <= NUM_KEYPOINTS):
            raise ValueError(f"the minimum keypoint count must be 0 to {NUM_KEYPOINTS}, got {min_keypoints!r}")
        self.min_score = float(min_score)
        self.min_keypoints = int(min_keypoints)
        self._empty = Poses.empty()

    def __repr__(self) -> str:
        return f"PersonFilter(min_score={self.min_score:g}, min_keypoints={self.min_keypoints})"

    def mask(self, poses: Poses) -> np.ndarray:
        """Boolean (P,): which poses are people."""
        keypoints_found = np.count_nonzero(poses.keypoints[:, :, 2] > 0, axis=1)
        return (poses.scores >= self.min_score) & (keypoints_found >= self.min_keypoints)

    def split(self, poses: Poses) -> tuple:
        """``(people, fragments)``, each a :class:`Poses`, in the decoder's order."""
        if not len(poses):
            return poses, self._empty
        mask = self.mask(poses)
        if mask.all():
            return poses, self._empty
        return poses.select(mask), poses.select(~mask)
