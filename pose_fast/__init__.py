"""pose_fast: real-time multi-person 2D pose estimation on video with OpenVINO."""
__version__ = "0.1.0"
