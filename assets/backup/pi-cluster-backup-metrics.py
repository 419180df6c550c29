#!/usr/bin/env python3
"""The backup target's status as Prometheus metrics, for node-exporter's textfile collector.

Reads the receiver's status.json and the binlog stream's .stream.json in BACKUP_DIR (both
written whole, by rename, by assets/backup/pi-cluster-backup.sh and
pi-cluster-binlog-stream.sh) and writes OUT atomically (a temporary file in OUT's directory,
then a rename), so node-exporter never reads half a file. Prometheus computes the ages from
the timestamps, so the file needs rewriting only as often as the stream's state may change:
a systemd timer runs this every few seconds (components/render/monitoring.ts).

A missing or unreadable status.json is not an error: the metrics say so
(pi_cluster_backup_status_ok 0), and the alert on it fires. Python's standard library only:
python3 is on every Raspberry Pi OS.

Usage: pi-cluster-backup-metrics.py BACKUP_DIR OUT
Exit status: 0 written; 2 bad usage; 1 OUT could not be written.
"""
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone

KINDS = ("full", "incremental", "binlog")


def epoch(text):
    """'2026-12-07T19:18:42Z' as UTC epoch seconds; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        return None


def read_json(path):
    """The JSON object in path, or None when it is missing or not a JSON object."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def number(value):
    """value when it is a number (not a bool), else None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def render(status, stream, now):
    """The metrics text for a status.json and a .stream.json (either may be None)."""
    out = []

    def metric(name, help_text, samples):
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            label_text = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
            out.append(f"{name}{label_text} {value:g}" if isinstance(value, float) else f"{name}{label_text} {value}")

    s = status or {}
    last_success = s.get("lastSuccess") if isinstance(s.get("lastSuccess"), dict) else {}
    stale_after = s.get("staleAfterSeconds") if isinstance(s.get("staleAfterSeconds"), dict) else {}
    failures = s.get("failures") if isinstance(s.get("failures"), list) else []
    failed_kinds = {f.get("kind") for f in failures if isinstance(f, dict)}

    metric("pi_cluster_backup_status_ok", "1 when the target's status.json was read, 0 when it is missing or unreadable.", [({}, 1 if status is not None else 0)])
    metric(
        "pi_cluster_backup_status_timestamp_seconds",
        "When the receiver last wrote status.json (0: unknown).",
        [({}, epoch(s.get("generatedAt")) or 0)],
    )
    metric(
        "pi_cluster_backup_last_success_timestamp_seconds",
        "When the last run of this kind succeeded (0: never).",
        [({"kind": k}, epoch(last_success.get(k)) or 0) for k in KINDS],
    )
    metric(
        "pi_cluster_backup_stale_after_seconds",
        "The stack's backup.staleAfterSeconds for this kind: older than this since the last success is stale.",
        [({"kind": k}, number(stale_after.get(k)) or 0) for k in KINDS if number(stale_after.get(k))],
    )
    newest = [(k, s.get(k) if isinstance(s.get(k), dict) else {}) for k in KINDS]
    metric(
        "pi_cluster_backup_newest_timestamp_seconds",
        "When the newest stored backup of this kind was taken (0: none stored).",
        [({"kind": k}, epoch(n.get("at")) or 0) for k, n in newest],
    )
    metric(
        "pi_cluster_backup_newest_bytes",
        "The size of the newest stored backup of this kind (0: none stored).",
        [({"kind": k}, number(n.get("bytes")) or 0) for k, n in newest],
    )
    metric(
        "pi_cluster_backup_failed",
        "1 while the last run of this kind failed (until its next success).",
        [({"kind": k}, 1 if k in failed_kinds else 0) for k in KINDS],
    )
    if stream is not None:
        metric("pi_cluster_binlog_stream_up", "1 while the binlog stream copies the database's binlog.", [({}, 1 if stream.get("state") == "up" else 0)])
        lag = number(stream.get("lagSeconds"))
        if lag is not None:
            metric("pi_cluster_binlog_stream_lag_seconds", "How long the stream's copy has lacked bytes the database had written.", [({}, lag)])
        bound = number(stream.get("maxLagSeconds"))
        if bound is not None:
            metric("pi_cluster_binlog_stream_max_lag_seconds", "The lag the stream is held to.", [({}, bound)])
        metric(
            "pi_cluster_binlog_stream_report_timestamp_seconds",
            "When the stream last wrote its report (it does at least every 10 s while it runs).",
            [({}, epoch(stream.get("checkedAt")) or 0)],
        )
    metric("pi_cluster_backup_metrics_timestamp_seconds", "When this file was written.", [({}, int(now))])
    return "\n".join(out) + "\n"


def write_atomically(path, text):
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".pi_cluster_backup.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv):
    if len(argv) != 3:
        print("usage: pi-cluster-backup-metrics.py BACKUP_DIR OUT", file=sys.stderr)
        return 2
    backup_dir, out = argv[1], argv[2]
    text = render(read_json(os.path.join(backup_dir, "status.json")), read_json(os.path.join(backup_dir, ".stream.json")), time.time())
    try:
        write_atomically(out, text)
    except OSError as e:
        print(f"pi-cluster-backup-metrics: cannot write {out}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
