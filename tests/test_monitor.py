from executor.monitor import Monitor, format_monitor, parse_monitor


def test_format_is_the_sdk_line():
    line = format_monitor("task0", 0.5, 2, timestamp=1677650000.123456)
    assert line == "task0\t1677650000.123456\t0.5000\t2\n"
    err = format_monitor("t", 0.3, 4, 300002, "bad\tthing\nhere", ["trace 1", "trace 2"], timestamp=1.0)
    first, *rest = err.splitlines()
    assert first.split("\t") == ["t", "1.000000", "0.3000", "4", "300002", "bad thing here"]
    assert rest == ["trace 1", "trace 2"]


def test_mining_and_infer_share_the_range_and_progress_never_goes_back(tmp_path):
    path = tmp_path / "monitor.txt"
    m = Monitor(str(path), "t1", ["mining", "infer"], min_interval_s=0)
    m.start()
    assert parse_monitor(path.read_text())["percent"] == 0.0
    m.update("mining", 0.5)
    assert parse_monitor(path.read_text())["percent"] == 0.25
    m.update("infer", 0.5)
    assert parse_monitor(path.read_text())["percent"] == 0.75
    m.update("mining", 1.0)  # late mining report: still 0.75
    rec = parse_monitor(path.read_text())
    assert rec["percent"] == 0.75 and rec["state"] == 2 and rec["task_id"] == "t1"
    ts = rec["timestamp"]
    m.finish()
    rec = parse_monitor(path.read_text())
    assert rec["percent"] == 1.0 and rec["state"] == 2 and rec["timestamp"] > ts


def test_throttling_and_failure_record(tmp_path):
    path = tmp_path / "monitor.txt"
    m = Monitor(str(path), "t1", ["training"], min_interval_s=60)
    m.start()
    m.update("training", 0.01)  # within the interval and < 5 %: not written
    assert parse_monitor(path.read_text())["percent"] == 0.0
    m.update("training", 0.2)
    assert parse_monitor(path.read_text())["percent"] == 0.2
    m.fail(300001, "config.yaml: field 'max_iters': bad", ["line a"])
    rec = parse_monitor(path.read_text())
    assert (rec["percent"], rec["state"], rec["return_code"]) == (1.0, 4, 300001)
    assert rec["message"].startswith("config.yaml") and rec["details"] == ["line a"]
