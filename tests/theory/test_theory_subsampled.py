"""Adam's training-batch second moment from a smaller batch (theory subsampled-adam-moment)."""

import numpy as np
import pytest
import torch

from limen import theory


def test_estimate_is_unbiased_by_enumeration_and_works_on_tensors():
    report = theory.get("subsampled-adam-moment").check(0)
    assert report.passed and report.max_error < 1e-12
    g, s = np.array([0.5, -1.0]), np.array([0.4, 2.0])
    want = g * g - 3 / 2 * (1 / 3 - 1 / 12) * (s - g * g)
    assert np.allclose(theory.subsampled_second_moment(g, s, 3, 12), want, rtol=1e-15)
    t = theory.subsampled_second_moment(torch.tensor(g), torch.tensor(s), 3, 12)
    assert isinstance(t, torch.Tensor) and np.allclose(t.numpy(), want, rtol=1e-15)
    assert np.array_equal(theory.subsampled_second_moment(g, s, 4, 4), g * g)   # b = B: Adam's own g²


@pytest.mark.parametrize("batch, train, match", [(1, 10, "batch must be an integer ≥ 2"),
                                                 (2.5, 10, "batch must be an integer ≥ 2"),
                                                 (5, 4, "train_batch must be an integer ≥ batch")])
def test_arguments_are_validated(batch, train, match):
    with pytest.raises(ValueError, match=match):
        theory.subsampled_second_moment(np.zeros(2), np.zeros(2), batch, train)
