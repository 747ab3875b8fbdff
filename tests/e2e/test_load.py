"""A small load on the running local stack: concurrent clients lose nothing and leave nothing."""

from bench.load import payloads, run_load


def test_concurrent_scans_are_neither_lost_nor_left_behind(local_stack, nih_dir):
    report = run_load(local_stack.url, local_stack.aws_endpoint, payloads(nih_dir), scans=30, clients=6, deadline_s=240)
    assert report["lost"] == 0 and report["objects_left"] == 0 and report["stuck"] == 0, (report["errors"], report)
    assert report["by_status"].get("complete", 0) >= 20 and report["by_status"].get("rejected", 0) >= 1
