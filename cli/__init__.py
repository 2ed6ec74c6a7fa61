"""Command-line front ends of pose_fast: ``pose-fast demo|web|create-db|bench|fetch-model``."""
