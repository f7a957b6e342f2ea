"""The safety net's threshold search (``hscc_core.safety_net``): on hand-made scores, and
on a tiny real model and a compressed copy of it."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hscc_core
from hscc_core import HSCCError
from hscc_core.safety_net import apply_safety_net, choose_safety_net, choose_threshold, confidence


def test_confidence_measures():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    assert confidence(p, "top").tolist() == pytest.approx([0.7, 0.4])
    assert confidence(p, "margin").tolist() == pytest.approx([0.5, 0.05])
    with pytest.raises(HSCCError, match="measure"):
        confidence(p, "entropy")
    with pytest.raises(HSCCError, match="classes >= 2"):
        confidence(torch.ones(3), "top")


def test_threshold_keeps_the_largest_set_that_meets_the_target():
    # scores descending; one disagreement at 0.55: keeping down to 0.6 is 4/4, down to 0.55 is 4/5
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4])
    agree = torch.tensor([1, 1, 1, 1, 0, 1, 1])
    c = choose_threshold(scores, agree, target=1.0)
    assert c.kept == 4 and c.threshold == pytest.approx(0.575) and c.kept_agreement == 1.0
    assert c.handed_over == pytest.approx(3 / 7) and c.effective_agreement == 1.0
    assert c.agreement_alone == pytest.approx(6 / 7)
    # a lower target accepts the disagreement and keeps everything (6/7 >= 0.85)
    c = choose_threshold(scores, agree, target=0.85)
    assert c.kept == 7 and c.threshold == pytest.approx(0.4) and c.effective_agreement == pytest.approx(6 / 7)
    kept = ~apply_safety_net(torch.stack([scores, 1 - scores], 1), "top", c.threshold)
    assert int(kept.sum()) == 7


def test_ties_are_never_split_and_nothing_kept_is_a_clear_result():
    scores = torch.tensor([0.9, 0.9, 0.9, 0.2])
    agree = torch.tensor([1, 0, 1, 1])
    c = choose_threshold(scores, agree, target=0.99)
    assert c.kept == 0 and math.isinf(c.threshold) and not c.met and c.handed_over == 1.0
    assert c.to_dict()["threshold"] is None and c.effective_agreement == 1.0
    assert apply_safety_net(torch.tensor([[0.99, 0.01]]), "top", None).all()
    with pytest.raises(HSCCError, match="target"):
        choose_threshold(scores, agree, target=0.0)
    with pytest.raises(HSCCError, match="one length"):
        choose_threshold(scores, agree[:2], target=0.9)


def _tiny_classifier(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(256, 4)).eval()


def test_threshold_search_on_a_tiny_model_and_its_compressed_copy():
    """A real tiny CNN, compressed by Global SVD to a quarter of its FLOPs: the chosen rule
    keeps the student's answers where they agree with the teacher's at the target, hands
    the rest over, and the combined answers reach the target on the selection inputs."""
    teacher = _tiny_classifier(0)
    torch.manual_seed(1)
    calibration = [torch.randn(16, 3, 12, 12) for _ in range(2)]
    config = hscc_core.CompressionConfig(method=hscc_core.Method.SVD, budget=4)
    student, _ = hscc_core.compress(teacher, calibration, config)
    select = torch.randn(300, 3, 12, 12)
    with torch.no_grad():
        p_student = torch.softmax(student(select), 1)
        ref = teacher(select).argmax(1)
    alone = float((p_student.argmax(1) == ref).float().mean())
    assert alone < 0.97, "the compressed copy should differ from its original on some inputs"
    chosen, every = choose_safety_net(p_student, ref, target=0.97)
    assert set(every) == {"top", "margin"} and chosen.handed_over == min(c.handed_over for c in every.values())
    assert chosen.met and chosen.kept_agreement >= 0.97 and chosen.effective_agreement >= 0.97 > alone
    handed = apply_safety_net(p_student, chosen.measure, chosen.threshold)
    assert int((~handed).sum()) == chosen.kept
    combined = torch.where(handed, ref, p_student.argmax(1))
    assert float((combined == ref).float().mean()) == pytest.approx(chosen.effective_agreement)
    # the rule is the largest kept set: lowering the threshold to the next score misses the target
    scores = confidence(p_student, chosen.measure)
    below = scores[handed]
    if len(below):
        looser = scores >= below.max()
        assert float((p_student.argmax(1)[looser] == ref[looser]).float().mean()) < 0.97
