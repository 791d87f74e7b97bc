"""The ring buffer across wrap-around and overrun, and its clock."""

import threading
import time

import numpy as np

from stream_ser.ring import RingBuffer


def test_read_across_wrap_around():
    r = RingBuffer(seconds=10 / 16000)  # capacity 10 samples
    r.write(np.arange(7))
    r.write(np.arange(7, 14))  # wraps
    assert r.written == 14
    np.testing.assert_array_equal(r.read(4, 14), np.arange(4, 14))
    assert r.overrun_samples == 0


def test_overwritten_samples_are_zeros_and_counted():
    r = RingBuffer(seconds=10 / 16000)
    r.write(np.arange(1, 11))
    r.write(np.arange(11, 16))  # values 1..15 at indices 0..14; indices 0..4 overwritten
    got = r.read(2, 8)
    np.testing.assert_array_equal(got, [0, 0, 0, 6, 7, 8])
    assert r.overrun_samples == 3


def test_future_samples_are_zero_padding_not_overrun():
    r = RingBuffer(seconds=1.0)
    r.write(np.ones(100))
    got = r.read(90, 120)
    assert got[:10].min() == 1 and got[10:].max() == 0 and r.overrun_samples == 0


def test_capture_time_is_the_blocks_arrival():
    r = RingBuffer(seconds=1.0)
    r.write(np.zeros(100), captured_at=10.0)
    r.write(np.zeros(100), captured_at=11.0)
    assert r.capture_time(0) == 10.0 and r.capture_time(99) == 10.0
    assert r.capture_time(100) == 11.0 and r.capture_time(199) == 11.0


def test_wait_write_applies_back_pressure_until_reader_releases():
    r = RingBuffer(seconds=10 / 16000)
    r.hold("reader", 0)
    r.write(np.arange(10), wait=True)  # fills, does not overwrite sample 0
    done = threading.Event()

    def writer():
        r.write(np.arange(5), wait=True)
        done.set()

    threading.Thread(target=writer, daemon=True).start()
    time.sleep(0.3)
    assert not done.is_set()  # would overwrite what "reader" holds
    r.hold("reader", 5)
    assert done.wait(2.0)
    assert r.overrun_samples == 0
