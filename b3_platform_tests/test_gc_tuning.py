"""Every process that loads the graph collects garbage on the thresholds of `gc_tuning`."""

import gc
import subprocess
import sys

from b3_platform import gc_tuning


def test_loading_the_definitions_sets_the_thresholds_in_a_fresh_process():
    code = "import gc; print(gc.get_threshold()); import b3_platform.definitions; print(gc.get_threshold())"
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == str((700, 10, 10))  # CPython's defaults before the graph loads
    expected = (gc_tuning.YOUNG_THRESHOLD, gc_tuning.MIDDLE_THRESHOLD, gc_tuning.OLD_THRESHOLD)
    assert out[1] == str(expected)


def test_the_collector_still_runs():
    assert gc.isenabled()
    gc_tuning.tune_for_runs()
    assert gc.isenabled() and gc.get_threshold()[0] == gc_tuning.YOUNG_THRESHOLD
