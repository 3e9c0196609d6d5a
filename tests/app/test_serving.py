"""The app's worker pool: requests run in parallel on copies of the predictor that give
the same answers, each request within its time limit, and bad settings are refused."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from zeromamba.errors import ConfigError, RequestTimeoutError
from zeromamba.serving import PredictorPool
from zeromamba.webapp import classify_for_page


@pytest.fixture(scope="module")
def predictor(tiny_predictor):
    return tiny_predictor(["apple", "ball", "zebra"], ["round", "red", "striped"], input_size=32)


def _image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8))


def test_workers_answer_in_parallel_like_the_predictor(predictor) -> None:
    pool = PredictorPool(predictor, 2, timeout=60)
    try:
        seen: list[tuple[int, float, float]] = []
        lock = threading.Lock()

        def hold(p, seconds: float) -> int:  # noqa: ANN001
            start = time.monotonic()
            time.sleep(seconds)
            with lock:
                seen.append((id(p), start, time.monotonic()))
            return id(p)

        threads = [threading.Thread(target=pool.run, args=(hold, 1.0)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        (a, a0, a1), (b, b0, b1) = seen
        assert a != b  # two workers, two predictor copies
        assert a0 < b1 and b0 < a1  # the two requests overlapped in time
        assert torch.get_num_threads() >= 1 and pool.threads_per_worker >= 1
        # a copy answers exactly as the predictor does, pages included
        for seed in range(4):
            page = pool.run(classify_for_page, _image(seed), {}, "gradient", 3)
            assert [r[1] for r in page["classes"]] == predictor.classify(_image(seed), top_k=3).names
    finally:
        pool.close()


def test_a_request_over_its_time_limit_is_answered_with_a_clear_error(predictor) -> None:
    pool = PredictorPool(predictor, 1, timeout=0.5)
    try:
        start = time.monotonic()
        with pytest.raises(RequestTimeoutError) as e:
            pool.run(lambda p: time.sleep(3))
        assert time.monotonic() - start < 2.5
        assert str(e.value) == (
            "no answer within 0.5 s (the server is busy or the request too heavy); try again later, or start the "
            "app with a higher --timeout or more --workers"
        )
        # a request waiting behind a busy worker counts its wait too
        with pytest.raises(RequestTimeoutError):
            pool.run(lambda p: "late")
    finally:
        pool.close()


@pytest.mark.parametrize(("workers", "timeout"), [(0, 10), (True, 10), (1.5, 10), (1, 0), (1, float("nan")), (1, "5")])
def test_bad_settings_are_refused(predictor, workers, timeout) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="must be"):
        PredictorPool(predictor, workers, timeout=timeout)


def test_requests_beyond_the_workers_and_the_waiting_room_are_refused_at_once(predictor) -> None:
    pool = PredictorPool(predictor, 1, timeout=60, max_waiting=1)
    release = threading.Event()
    try:
        running = threading.Thread(target=pool.run, args=(lambda p: release.wait(30),), daemon=True)
        waiting = threading.Thread(target=pool.run, args=(lambda p: True,), daemon=True)
        running.start()
        waiting.start()
        deadline = time.monotonic() + 10
        while pool.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.in_flight == 2
        started = time.monotonic()
        with pytest.raises(
            RequestTimeoutError, match=r"the server is busy \(2 requests running or waiting, at most 2\)"
        ):
            pool.run(lambda p: True)
        assert time.monotonic() - started < 1  # refused, not queued
        release.set()
        running.join(10)
        waiting.join(10)
        assert pool.in_flight == 0 and pool.run(lambda p: "served") == "served"
    finally:
        release.set()
        pool.close()
    with pytest.raises(ConfigError, match="waiting requests must be a whole number of at least 0"):
        PredictorPool(predictor, 1, max_waiting=-1)
