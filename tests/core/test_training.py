"""Tests of ``napari_xray_denoise.core.training``: the generic fit loop, its schedules and time budget."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")


from blindspot_helpers import NOISE_INIT_1, _stripes_x01  # noqa: E402


def _fit_tiny(mode: str, steps: int = 30):
    import keras

    from napari_xray_denoise.core.blindspot.network import (
        build_blindspot_model,
        make_blindspot_loss,
    )
    from napari_xray_denoise.core.training import FitSchedule, fit

    keras.utils.set_random_seed(0)
    noisy = _stripes_x01()
    model = build_blindspot_model(
        channels=1, mode=mode, enc_filters=8, dec_filters=8, levels=1, noise_init=NOISE_INIT_1
    )
    loss_fn = make_blindspot_loss(mode, 1, [NOISE_INIT_1[0]["var_ref"]], reg=0.05)

    def batch(rng):
        ys, xs = rng.integers(0, 96 - 16, 4), rng.integers(0, 96 - 16, 4)
        x = np.stack([noisy[y : y + 16, x : x + 16] for y, x in zip(ys, xs, strict=True)])[
            ..., None
        ]
        return x, np.concatenate([x, np.ones_like(x)], axis=-1)

    rng = np.random.default_rng(1)
    val = [batch(np.random.default_rng(7)) for _ in range(2)]
    before = np.mean([float(loss_fn(t, model(x))) for x, t in val])
    result = fit(
        model,
        loss_fn,
        lambda: batch(rng),
        val,
        FitSchedule(steps=steps, val_every=10, learning_rate=3e-3),
    )
    after = np.mean([float(loss_fn(t, model(x))) for x, t in val])
    return before, after, result, model


@pytest.mark.parametrize(
    "mode",
    ["poissongaussian"]
    + [pytest.param(m, marks=pytest.mark.slow) for m in ("mse", "uncalib", "gaussian", "poisson")],
)
def test_each_mode_trains_and_loss_decreases(mode):
    before, after, result, model = _fit_tiny(mode)
    assert np.isfinite(after) and np.isfinite(result.best_val_loss)
    assert after < before - 0.5 * abs(before) or after < 0.5 * before
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_fit_lowers_learning_rate_on_plateau_and_stops_early():
    import keras

    from napari_xray_denoise.core.training import FitSchedule, fit

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    x = np.ones((2, 4), np.float32)

    def flat_loss(targets, outputs):  # a loss that never improves
        return keras.ops.mean(outputs * 0.0) + 1.0

    schedule = FitSchedule(
        steps=100,
        learning_rate=1e-2,
        val_every=1,
        lr_patience=2,
        lr_factor=0.5,
        early_stop_patience=5,
    )
    result = fit(model, flat_loss, lambda: (x, x), [(x, x)], schedule)
    assert result.stopped_early and result.steps_done == 6 and result.best_step == 1
    assert result.final_learning_rate == pytest.approx(2.5e-3)


def test_cosine_schedule_warms_up_peaks_and_decays_to_min_lr():
    from napari_xray_denoise.core.training import FitSchedule

    s = FitSchedule(steps=1000, learning_rate=1e-3, min_lr=1e-6, lr_schedule="cosine")
    assert s.cosine_lr(0.0) == pytest.approx(1e-5)  # 1% of the peak, never 0
    assert s.cosine_lr(0.01) == pytest.approx(5e-4)  # half-way through the 2% warm-up
    assert s.cosine_lr(0.02) == pytest.approx(1e-3)
    mid = s.cosine_lr(0.51)
    assert mid == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5, rel=1e-6)
    assert s.cosine_lr(1.0) == pytest.approx(1e-6)
    lrs = [s.cosine_lr(f) for f in np.linspace(0.02, 1.0, 50)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    # the time budget drives the fraction when it is further along than the steps
    timed = FitSchedule(steps=1000, max_minutes=1.0)
    assert timed.progress(10, 30.0) == pytest.approx(0.5)
    assert timed.progress(900, 30.0) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="lr_schedule"):
        FitSchedule(lr_schedule="step")
    with pytest.raises(ValueError, match="max_minutes"):
        FitSchedule(max_minutes=0)


def test_fit_stops_on_its_time_budget_at_a_low_learning_rate():
    import time

    import keras

    from napari_xray_denoise.core.training import FitSchedule, fit

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    x = np.ones((2, 4), np.float32)

    def slow_batch():
        time.sleep(0.01)
        return x, x

    def loss(targets, outputs):
        return keras.ops.mean(keras.ops.square(outputs - targets[:, :1]))

    schedule = FitSchedule(
        steps=10**6,
        learning_rate=1e-2,
        min_lr=1e-5,
        val_every=5,
        lr_schedule="cosine",
        max_minutes=0.02,
    )
    t0 = time.perf_counter()
    result = fit(model, loss, slow_batch, [(x, x)], schedule)
    assert result.out_of_time and not result.cancelled
    assert 1.0 <= time.perf_counter() - t0 < 10.0
    assert 10 < result.steps_done < 10**6
    assert result.final_learning_rate < 1e-3  # decayed towards min_lr, not left at the peak
