"""Tiny protocol settings shared by the engine tests (digits, hidden 32-32, a few steps)."""

import pytest

from limen.verify.subliminal import RunConfig

TINY = dict(data="digits", hidden=(32, 32), teacher_epochs=1, student_epochs=1, noise_steps=4, noise_batch=64,
            eval_noise_batches=2, eval_noise_batch=64)


def _tiny(**kw) -> RunConfig:
    return RunConfig(**{**TINY, **kw})


@pytest.fixture
def tiny():
    """Factory of tiny configs: ``tiny(seed=1, m=3, ...)``."""
    return _tiny


@pytest.fixture
def fresh_cache():
    from limen.verify.subliminal import TeacherCache
    return TeacherCache()
