"""segnext_jt.interrupts, the one SIGINT/SIGTERM mechanism: the exception, deferral during
critical sections, one signal only, and Jittor's import not taking SIGINT away from it. (The
tools' behaviour end to end is in tests/engine/test_trainer_reliability.py, tests/tools/test_eval.py,
tests/repro/test_report_hostile.py and tests/repro/test_seed_sweep_processes.py.)"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT

from segnext_jt import cli, interrupts
from segnext_jt.cli import run_tool
from segnext_jt.interrupts import (Interrupted, TrainingInterrupted, critical_section, install_signal_handlers,
                                   interrupt_signum)


@pytest.fixture
def handlers():
    restore = install_signal_handlers()
    try:
        yield
    finally:
        restore()


def _wait_for_signal_delivery():
    for _ in range(100):  # the handler runs between bytecodes; a few iterations are plenty
        time.sleep(0.001)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_raises_interrupted(handlers, sig):
    with pytest.raises(Interrupted) as info:
        os.kill(os.getpid(), sig)
        _wait_for_signal_delivery()
    exc = info.value
    assert isinstance(exc, KeyboardInterrupt)  # not swallowed by `except Exception`
    assert (exc.signum, exc.exit_code, str(exc)) == (sig, 128 + sig, sig.name)
    assert interrupt_signum(exc) == sig


def test_a_signal_waits_for_the_critical_section(handlers):
    finished = []
    with pytest.raises(Interrupted) as info:
        with critical_section():
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for_signal_delivery()
            finished.append("the write completed")
    assert finished == ["the write completed"] and info.value.signum == signal.SIGTERM


def test_a_second_signal_during_the_clean_up_is_ignored(handlers):
    with pytest.raises(Interrupted):
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for_signal_delivery()
    os.kill(os.getpid(), signal.SIGTERM)  # would end the test run if it raised or killed
    _wait_for_signal_delivery()


def test_restore_puts_the_previous_handlers_back():
    outer = signal.getsignal(signal.SIGTERM)  # an in-process tool test may have left ours installed
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        restore = install_signal_handlers()
        assert signal.getsignal(signal.SIGTERM) is interrupts._on_signal
        restore()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, outer)


def test_jittor_import_leaves_our_sigint_handler_in_place():
    # segnext_jt.runtime re-installs SIGINT after Jittor's import; it used to install Python's
    # KeyboardInterrupt there, so a Ctrl-C during a checkpoint write was not deferred
    code = ("import signal, sys\n"
            "from segnext_jt import interrupts\n"
            "interrupts.install_signal_handlers()\n"
            "import segnext_jt.runtime\n"
            "sys.exit(0 if signal.getsignal(signal.SIGINT) is interrupts._on_signal else 3)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_without_our_handlers_sigint_is_a_keyboard_interrupt():
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        interrupts.give_signals_back_to_python()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_training_interrupted_names_the_iteration_and_checkpoint():
    exc = TrainingInterrupted(signal.SIGTERM, 40, "/w/iter_32.npz")
    assert isinstance(exc, Interrupted) and exc.exit_code == 143
    assert str(exc) == ("interrupted by SIGTERM at iteration 40 (latest checkpoint iter_32.npz); "
                        "resume with --resume")
    assert str(TrainingInterrupted(signal.SIGINT, 3)) == ("interrupted by SIGINT at iteration 3 (no checkpoint yet); "
                                                          "resume with --resume")
    assert str(TrainingInterrupted()) == ("interrupted by SIGINT before training started; "
                                          "run the same command again")


@pytest.mark.parametrize("exc, code, name", [(Interrupted(signal.SIGTERM), 143, "SIGTERM"),
                                             (KeyboardInterrupt(), 130, "SIGINT")])
def test_run_tool_ends_an_interrupt_with_one_line(capsys, monkeypatch, exc, code, name):
    monkeypatch.delenv("SEGNEXT_DEBUG", raising=False)
    monkeypatch.setattr(cli, "leave_now", lambda code: None)  # it would os._exit once Jittor is imported

    def interrupted():
        raise exc

    assert run_tool(interrupted, interrupted_message="nothing written") == code
    assert capsys.readouterr().err == f"error: interrupted by {name}; nothing written\n"


def test_other_exceptions_are_not_interrupts():
    assert interrupt_signum(ValueError("x")) is None and interrupt_signum(SystemExit(1)) is None
