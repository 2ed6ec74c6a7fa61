"""The BODY_18 skeleton of human-pose-estimation-0001: keypoint names, limbs, PAF channels, colours."""
import numpy as np

__all__ = ["KEYPOINT_NAMES", "NUM_KEYPOINTS", "NUM_HEATMAPS", "NUM_PAF_CHANNELS", "LIMBS", "PAF_X_CHANNELS",
           "COCO17_FROM_BODY18", "DRAWN_LIMBS", "LIMB_COLORS"]

KEYPOINT_NAMES = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)  # 18
NUM_HEATMAPS = NUM_KEYPOINTS + 1  # plus background
NUM_PAF_CHANNELS = 38

#: Limbs as (from, to) keypoint pairs, in the PAF order of the original OpenPose training.
LIMBS = np.array([
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
], dtype=np.intp)

#: The x-channel of each limb's field in the PAF tensor; the y-channel is the next one.
PAF_X_CHANNELS = np.array([12, 20, 14, 16, 22, 24, 0, 2, 4, 6, 8, 10, 28, 30, 34, 32, 36, 18, 26],
                          dtype=np.intp)

#: BODY_18 index of each COCO-17 keypoint (the neck has no COCO counterpart).
COCO17_FROM_BODY18 = np.array([0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10], dtype=np.intp)

#: Limbs drawn by the overlay: the first 17 (the last two, shoulder to ear, only help grouping).
DRAWN_LIMBS = LIMBS[:17]

#: One BGR colour per drawn limb, OpenPose's rainbow.
LIMB_COLORS = (
    (0, 0, 255), (0, 85, 255), (0, 170, 255), (0, 255, 255), (0, 255, 170), (0, 255, 85),
    (0, 255, 0), (85, 255, 0), (170, 255, 0), (255, 255, 0), (255, 170, 0), (255, 85, 0),
    (255, 0, 0), (255, 0, 85), (255, 0, 170), (255, 0, 255), (170, 0, 255),
)
