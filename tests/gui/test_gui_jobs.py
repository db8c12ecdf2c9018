"""Slow work off the GUI thread (umlgui.gui.jobs): results, errors, and quitting while a job runs."""

from __future__ import annotations

import time

import pytest

from umlgui.errors import UmlguiError
from umlgui.gui.jobs import finish_jobs, run_job

pytestmark = pytest.mark.gui


def test_a_job_hands_its_result_to_the_gui_thread(qtbot):
    results = []
    job = run_job(None, "Adding", lambda progress: 2 + 2, on_done=results.append)
    with qtbot.waitSignal(job.finished, timeout=5000):
        pass
    assert results == [4]


def test_a_failing_job_hands_its_error_over(qtbot):
    errors = []

    def work(progress):
        raise UmlguiError("the image is gone", "choose another image")

    job = run_job(None, "Opening", work, on_error=errors.append)
    with qtbot.waitSignal(job.finished, timeout=5000):
        pass
    assert [error.problem for error in errors] == ["the image is gone"]


def test_quitting_waits_for_a_job_to_finish(qtbot):
    done = []

    def work(progress):
        time.sleep(0.5)
        done.append(True)

    run_job(None, "Halting", work)
    finish_jobs(timeout_s=10)
    assert done == [True]


def test_quitting_cancels_a_job_that_outlasts_the_wait(qtbot):
    stages = []

    def work(progress):
        while True:
            progress.step("merging")  # raises Cancelled once the job is cancelled
            stages.append("merging")
            time.sleep(0.02)

    cancelled = []
    run_job(None, "Merging", work, on_cancel=lambda: cancelled.append(True))
    started = time.monotonic()
    finish_jobs(timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started < 3 and stages
    qtbot.waitUntil(lambda: cancelled == [True], timeout=5000)


def test_a_job_outliving_its_window_ends_quietly(qtbot):
    import shiboken6
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QWidget

    window = QWidget()
    done = []
    run_job(window, "Halting", lambda progress: (time.sleep(0.2), done.append(True)))
    finish_jobs(timeout_s=10)
    QCoreApplication.sendPostedEvents()   # the job's thread has finished; its clean-up is due
    shiboken6.delete(window)              # the window (and the job's QObject) go first
    qtbot.wait(50)                        # pytest-qt fails the test on any exception here
    assert done == [True]
