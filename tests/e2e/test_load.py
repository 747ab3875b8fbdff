"""A small load on the running local stack: concurrent clients lose nothing and leave nothing."""

from bench.load import payloads, run_load


def test_concurrent_scans_are_neither_lost_nor_left_behind(local_stack, nih_dir):
    items = payloads(nih_dir)  # slices that must complete, and one truncated file that must be rejected
    report = run_load(local_stack.url, local_stack.aws_endpoint, items, scans=30, clients=6, deadline_s=240)
    assert report["lost"] == 0 and report["objects_left"] == 0 and report["stuck"] == 0, (report["errors"], report)
    junk = sum(items[i % len(items)][0] == "scan.png" for i in range(30))
    assert junk >= 1 and report["by_status"] == {"complete": 30 - junk, "rejected": junk}, report
