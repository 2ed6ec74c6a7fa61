"""`Poses`: the people found in one frame."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .skeleton import COCO17_FROM_BODY18, NUM_KEYPOINTS

__all__ = ["Poses"]


@dataclass(frozen=True)
class Poses:
    """People in one frame, in source-frame pixels.

    Attributes
    ----------
    keypoints : ndarray, shape (P, 18, 3), float32
        x, y and score of each BODY_18 keypoint; a missing keypoint is (0, 0, 0).
    scores : ndarray, shape (P,), float32
        One overall score per person.
    """

    keypoints: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        if self.keypoints.ndim != 3 or self.keypoints.shape[1:] != (NUM_KEYPOINTS, 3):
            raise ValueError(f"keypoints must have shape (P, 18, 3), got {self.keypoints.shape}")
        if self.scores.shape != (self.keypoints.shape[0],):
            raise ValueError(f"scores must have shape ({self.keypoints.shape[0]},), got {self.scores.shape}")

    @classmethod
    def empty(cls) -> Poses:
        return cls(np.zeros((0, NUM_KEYPOINTS, 3), np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def select(self, which) -> Poses:
        """The people picked by ``which`` (a boolean mask or indices), as new arrays."""
        return Poses(self.keypoints[which], self.scores[which])

    def to_coco17(self) -> np.ndarray:
        """Keypoints as (P, 17, 3) in COCO order (the neck is dropped)."""
        return self.keypoints[:, COCO17_FROM_BODY18, :]

    def boxes(self) -> np.ndarray:
        """Bounding box (x0, y0, x1, y1) of each person's visible keypoints, shape (P, 4)."""
        out = np.zeros((len(self), 4), np.float32)
        for i, kp in enumerate(self.keypoints):
            seen = kp[kp[:, 2] > 0]
            if len(seen):
                out[i] = (seen[:, 0].min(), seen[:, 1].min(), seen[:, 0].max(), seen[:, 1].max())
        return out

    def to_list(self) -> list:
        """Plain-Python form for JSON: one dict per person with 18 [x, y, score] rows and a score."""
        return [
            {"keypoints": np.round(kp.astype(np.float64), 2).tolist(), "score": round(float(s), 4)}
            for kp, s in zip(self.keypoints, self.scores)
        ]
