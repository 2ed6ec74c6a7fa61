"""The overlay: in place, per-limb colours, numbers, header, scaled to the frame height."""
from __future__ import annotations

import numpy as np
import pytest

from pose_fast.decoding import Decoder
from pose_fast.poses import Poses
from pose_fast.render import KEYPOINT_COLORS, Renderer, order_numbers
from pose_fast.skeleton import DRAWN_LIMBS, LIMB_COLORS


def _person(x0: float, y0: float, scale: float = 1.0) -> np.ndarray:
    """A standing figure (18 BODY_18 keypoints, all visible) with its nose at (x0, y0)."""
    rel = np.array([
        (0, 0), (0, 20), (-15, 20), (-20, 45), (-22, 70), (15, 20), (20, 45), (22, 70), (-10, 75), (-12, 110),
        (-13, 145), (10, 75), (12, 110), (13, 145), (-4, -4), (4, -4), (-8, -2), (8, -2)], np.float32)
    kp = np.ones((18, 3), np.float32)
    kp[:, :2] = rel * scale + (x0, y0)
    return kp


def _poses(*people) -> Poses:
    kp = np.stack(people).astype(np.float32)
    return Poses(kp, np.full(len(people), 10.0, np.float32))


def test_draws_in_place_on_the_given_frame():
    frame = np.zeros((270, 480, 3), np.uint8)
    pointer = frame.ctypes.data
    out = Renderer().draw(frame, _poses(_person(200, 60)), inference_ms=215.0, fps=4.6)
    assert out is frame and frame.ctypes.data == pointer
    assert frame.any()


def test_limbs_and_keypoints_in_their_colours():
    frame = np.zeros((540, 960, 3), np.uint8)
    kp = _person(400, 100, scale=2.5)
    Renderer(header=False, numbers=False).draw(frame, _poses(kp))
    for i, (a, b) in enumerate(DRAWN_LIMBS):
        if i in (13, 14, 15, 16):  # the short face limbs are covered by the keypoint dots
            continue
        mid = ((kp[a, :2] + kp[b, :2]) / 2).round().astype(int)
        assert tuple(int(v) for v in frame[mid[1], mid[0]]) == LIMB_COLORS[i], i
    for k in (4, 7, 10, 13):  # wrists and ankles: ends where no other line passes
        x, y = kp[k, :2].round().astype(int)
        assert tuple(int(v) for v in frame[y, x]) == KEYPOINT_COLORS[k]


def test_fragments_are_thin_grey_lines_without_a_number():
    frame = np.zeros((540, 960, 3), np.uint8)
    person, fragment = _person(200, 100, scale=2.5), _person(700, 100, scale=2.5)
    fragment[5:, 2] = 0  # nose, neck, right arm: what a split leaves
    Renderer(header=False).draw(frame, _poses(person), fragments=_poses(fragment))
    right = frame[:, 600:]
    colours = {tuple(int(v) for v in px) for px in right.reshape(-1, 3) if px.any()}
    assert colours and all(len(set(c)) == 1 for c in colours), colours  # grey only (anti-aliased shades)
    mid = ((fragment[2, :2] + fragment[3, :2]) / 2).round().astype(int)  # the upper arm
    assert frame[mid[1], mid[0]].any()
    assert not frame[mid[1], mid[0] + 3].any()  # one pixel thin, where a person's limb is three
    assert frame[:, 200:560].any()  # the person, in colour, with its number


def test_missing_keypoints_are_not_drawn():
    frame = np.zeros((270, 480, 3), np.uint8)
    kp = _person(200, 40)
    kp[4:8, 2] = 0  # arms' lower half missing
    kp[4:8, :2] = 0
    Renderer(header=False, numbers=False).draw(frame, _poses(kp))
    assert not frame[:5, :5].any()  # nothing drawn at (0, 0) where missing keypoints sit


def test_order_numbers_go_left_to_right():
    poses = _poses(_person(300, 50), _person(50, 50), _person(180, 50))
    assert order_numbers(poses.keypoints).tolist() == [3, 1, 2]
    assert order_numbers(np.zeros((0, 18, 3), np.float32)).tolist() == []


def _label_box(frame_height: int, label_x: int):
    """Draw one person numbered 7 on a bright frame; return the part of the frame left of the person."""
    width = frame_height * 16 // 9
    frame = np.zeros((frame_height, width, 3), np.uint8)
    frame[:] = 200  # bright background: the number's box is darker
    s = frame_height / 270
    kp = _person(label_x * s, 60 * s, scale=s)
    Renderer(header=False).draw(frame, _poses(kp), labels=[7])
    left = frame[:, : int(kp[:, 0].min()) - 1]
    return left


@pytest.mark.parametrize("height", [270, 1080])
def test_each_person_gets_a_number_box_next_to_them(height):
    left = _label_box(height, 240)
    dark = left.max(axis=2) < 100
    white = left.min(axis=2) > 240
    assert dark.any() and white.any()  # a darkened box with white text
    rows = np.flatnonzero(dark.any(axis=1))
    assert rows.max() - rows.min() >= height * 0.03  # readable: a few percent of the frame height


def test_negative_label_draws_no_number():
    with_number = np.full((270, 480, 3), 200, np.uint8)
    without = with_number.copy()
    poses = _poses(_person(240, 60))
    Renderer(header=False).draw(with_number, poses, labels=[3])
    Renderer(header=False).draw(without, poses, labels=[-1])
    assert (with_number != without).any()
    assert (without[:, :200] == 200).all()


@pytest.mark.parametrize("height", [270, 1080])
def test_header_scales_with_the_frame(height):
    frame = np.full((height, height * 16 // 9, 3), 200, np.uint8)
    Renderer().draw(frame, Poses.empty(), inference_ms=215.4, fps=4.62, people=0)
    dark_rows = np.flatnonzero((frame[:, :20].max(axis=2) < 100).any(axis=1))
    assert dark_rows.min() == 0
    box_height = dark_rows.max() + 1
    assert 0.04 * height <= box_height <= 0.12 * height
    dark_cols = np.flatnonzero((frame[:5].max(axis=2) < 100).any(axis=0))
    assert dark_cols.max() > 0.2 * frame.shape[1]  # the text line is long enough to be legible
    assert (frame[:box_height].min(axis=2) > 240).any()  # white text


def test_header_text_depends_on_the_numbers():
    a = np.full((270, 480, 3), 200, np.uint8)
    b = a.copy()
    Renderer().draw(a, Poses.empty(), inference_ms=215, fps=4.6)
    Renderer().draw(b, Poses.empty(), inference_ms=87, fps=11.5)
    assert (a[:30] != b[:30]).any()


def test_real_frame_with_decoded_poses(engine_for, read_frames):
    frame = read_frames("store-aisle", count=1)[0].copy()
    engine = engine_for(480, 270)
    poses = Decoder()(*engine.infer(frame), frame_size=(480, 270))
    assert len(poses) >= 1
    before = frame.copy()
    Renderer().draw(frame, poses, inference_ms=engine.last_infer_ms, fps=4.0)
    changed = (frame != before).any(axis=2)
    for kp in poses.keypoints:
        x, y = kp[kp[:, 2] > 0][0, :2].round().astype(int)
        assert changed[max(0, y - 2):y + 3, max(0, x - 2):x + 3].any()


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        Renderer().draw(np.zeros((10, 10), np.uint8), Poses.empty())
    with pytest.raises(ValueError, match="2 labels for 1 people"):
        Renderer().draw(np.zeros((10, 10, 3), np.uint8), _poses(_person(5, 5)), labels=[1, 2])
